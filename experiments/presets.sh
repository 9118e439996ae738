#!/usr/bin/env bash
# Issue 12 part 1: raw pixels and FastAP with labels (the upper bound: backbone trained from
# scratch) on the held-out split of each phantom preset. From the repository root:
#
#   bash experiments/presets.sh [PRESET ...]     # default: phantom and the four presets
#
# Results: outputs/pixels_<preset>/<time>/metrics.json and outputs/labels_<preset>/<run>/inference*/.
# phantom_crosscontrast's main frames are data=phantom's (byte-identical): its labels run can be
# skipped and the phantom one scored with data=phantom_crosscontrast (its T2 queries) and with
# data=frames data.root=<its phantom folder>/target (the T2 sequence; labels for scoring only).
set -euo pipefail
PY=${PY:-.venv/bin/python}
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(phantom phantom_subtle phantom_subtle_drift phantom_axial phantom_crosscontrast)
for p in "${presets[@]}"; do
  $PY -m fastap_lab.evaluate baseline=pixels data="$p" experiment_name="pixels_$p"
  $PY -m fastap_lab.train +experiment=fastap10_labels data="$p" model.pretrained=null \
    model.freeze_backbone=false experiment_name="labels_$p"
  $PY -m fastap_lab.evaluate ckpt_path="$(ls -d "outputs/labels_$p"/*/ | tail -1)"
done
