#!/usr/bin/env bash
# Issue 6 experiment series on the default phantom (held-out time blocks, ±2 s exclusion).
# Needs the two SimSiam runs first (each ≈ 10 min alone on 2 CPU cores):
#   python -m fastap_lab.train +experiment=simsiam100                       # motion_safe views
#   python -m fastap_lab.train +experiment=simsiam100 augment=contrast_remap experiment_name=simsiam100_remap
# then, from the repository root:  bash experiments/series.sh 2>&1 | tee outputs/series.log
# Each step prints "TIME <seconds>s <command>"; results land in each run's inference/.
set -euo pipefail
PY=${PY:-.venv/bin/python}
timed() { local start=$SECONDS; "$@"; echo "TIME $((SECONDS - start))s $*"; }
fastap() {  # fastap() PARENT AUGMENT EXPERIMENT NAME [OVERRIDES...]
  local parent=$1 aug=$2 exp=$3 name=$4; shift 4
  timed $PY -m fastap_lab.train +experiment="$exp" augment="$aug" \
    "model.pretrained=\${latest_checkpoint:$parent}" experiment_name="$name" "$@"
}

# 1. baselines
timed $PY -m fastap_lab.evaluate model=pixels
timed $PY -m fastap_lab.evaluate model=untrained
# 3-4. FastAP 10 from each SimSiam: views (the reference report), labels, temporal positives
for parent in simsiam100_remap simsiam100; do
  aug=motion_safe; [ "$parent" = simsiam100_remap ] && aug=contrast_remap
  fastap $parent $aug fastap10_labels "fastap10_labels_from_$parent"
  fastap $parent $aug fastap10_temporal "fastap10_temporal_from_$parent"
  fastap $parent $aug fastap10 "fastap10_from_$parent"
  fastap $parent $aug fastap10_labels "fastap10_labels_unfrozen_from_$parent" model.freeze_backbone=false
done
# 5. sweep: sigma x bins x projector freezing (views, from the remap SimSiam)
timed $PY -m fastap_lab.train -m +experiment=fastap10 augment=contrast_remap \
  "model.pretrained=\${latest_checkpoint:simsiam100_remap}" experiment_name=fastap10_sweep \
  loss.sigma=0.01,0.05,0.1 loss.bins=10,100 model.freeze_projector=false,true
