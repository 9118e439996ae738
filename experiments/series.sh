#!/usr/bin/env bash
# Issue 6 experiment series on the default phantom (held-out time blocks, ±2 s exclusion).
# Run from the repository root after `+experiment=simsiam100` (motion_safe) and
# `+experiment=simsiam100 augment=contrast_remap experiment_name=simsiam100_remap` exist:
#   bash experiments/series.sh 2>&1 | tee outputs/series.log
# Each step prints "TIME <seconds>s <command>"; results land in each run's inference/.
set -euo pipefail
PY=${PY:-.venv/bin/python}
timed() { local start=$SECONDS; "$@"; echo "TIME $((SECONDS - start))s $*"; }

# 1. baselines
timed $PY -m fastap_lab.evaluate model=pixels
timed $PY -m fastap_lab.evaluate model=untrained
# 3-4. FastAP 10 from each SimSiam: views (the reference report), labels, temporal positives
for parent in simsiam100 simsiam100_remap; do
  aug=motion_safe; [ "$parent" = simsiam100_remap ] && aug=contrast_remap
  for exp in fastap10 fastap10_labels fastap10_temporal; do
    timed $PY -m fastap_lab.train +experiment=$exp augment=$aug \
      "model.pretrained=\${latest_checkpoint:$parent}" experiment_name=${exp}_from_$parent
  done
done
# 5. sweep: sigma x bins x projector freezing (views, from the remap SimSiam)
timed $PY -m fastap_lab.train -m +experiment=fastap10 augment=contrast_remap \
  "model.pretrained=\${latest_checkpoint:simsiam100_remap}" experiment_name=fastap10_sweep \
  loss.sigma=0.01,0.05,0.1 loss.bins=10,100 model.freeze_projector=false,true
