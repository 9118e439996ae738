#!/usr/bin/env bash
# Issue 12, part 6: the reference pipeline on every phantom preset — SimSiam 100 epochs, then
# fastap10 (views), fastap10_temporal and fastap10_surrogate from it — beside raw pixels
# (each run's metrics.json pixel_baseline) and the label-free recipe (surrogate10_seeds.sh).
# Usage: bash experiments/preset_rows.sh OUT [PRESET ...]   (default: the three new presets)
set -euo pipefail
out=${1:?give an output folder}; shift
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(phantom_subtle phantom_subtle_drift phantom_axial)
for p in "${presets[@]}"; do
  [ -f "$out/$p-simsiam100/FINISHED" ] || python -m fastap_lab.train +experiment=simsiam100 \
    data="$p" hydra.run.dir="$out/$p-simsiam100"
  for exp in fastap10 fastap10_temporal fastap10_surrogate; do
    [ -f "$out/$p-$exp/FINISHED" ] || python -m fastap_lab.train +experiment=$exp data="$p" \
      model.pretrained="$out/$p-simsiam100" hydra.run.dir="$out/$p-$exp"
  done
done
python - "$out" <<'PY'
import json, sys
from pathlib import Path
print("| preset | run | held-out mAP | raw pixels | margin |")
print("|---|---|---|---|---|")
for metrics in sorted(Path(sys.argv[1]).glob("*/inference/metrics.json")):
    record = json.loads(metrics.read_text())
    preset, run = metrics.parents[1].name.split("-", 1)
    pixels = record["pixel_baseline"]["pixels"]["mAP"]
    mAP = record["metrics"]["mAP"]
    print(f"| {preset} | {run} | {mAP:.3f} | {pixels:.3f} | {mAP - pixels:+.3f} |")
PY
