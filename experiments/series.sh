#!/usr/bin/env bash
# Issue 6 experiment series on the default phantom (held-out time blocks, ±2 s exclusion).
# From the repository root; each step prints "TIME <seconds>s <command>", results land in
# each run's inference/ (baselines: outputs/evaluate/<time>/).
#
#   bash experiments/series.sh baselines            # raw pixels, untrained ResNet-18
#   bash experiments/series.sh fastap PARENT        # FastAP 10 variants from outputs/PARENT/<newest>
#   bash experiments/series.sh sweep PARENT         # sigma x bins x projector freezing (12 runs)
#
# PARENT is a SimSiam experiment name: simsiam100 (python -m fastap_lab.train
# +experiment=simsiam100), simsiam100_remap / simsiam100_robust / simsiam100_grid (the same with
# augment=contrast_remap / augment=contrast_robust / backbone.pool=grid, experiment_name=...).
# FastAP uses the parent's augment and backbone pooling.
set -euo pipefail
PY=${PY:-.venv/bin/python}
timed() { local start=$SECONDS; "$@"; echo "TIME $((SECONDS - start))s $*"; }
augment_of() {
  case $1 in *_remap) echo contrast_remap ;; *_robust) echo contrast_robust ;; *) echo motion_safe ;; esac
}
backbone_of() {  # FastAP must build the parent's backbone (pooling) to load its weights
  case $1 in *_grid) echo backbone.pool=grid ;; *) echo backbone.pool=avg ;; esac
}
fastap() {  # fastap PARENT EXPERIMENT NAME [OVERRIDES...]
  local parent=$1 exp=$2 name=$3; shift 3
  timed $PY -m fastap_lab.train +experiment="$exp" augment="$(augment_of "$parent")" \
    "$(backbone_of "$parent")" "model.pretrained=\${latest_checkpoint:$parent}" \
    experiment_name="$name" "$@"
}

case ${1:?baselines, fastap PARENT or sweep PARENT} in
  baselines)
    timed $PY -m fastap_lab.evaluate baseline=pixels
    timed $PY -m fastap_lab.evaluate baseline=untrained ;;
  fastap)  # views (the reference report), labels, temporal positives; labels with the backbone trained
    parent=${2:?PARENT}
    fastap "$parent" fastap10 "fastap10_from_$parent"
    fastap "$parent" fastap10_labels "fastap10_labels_from_$parent"
    fastap "$parent" fastap10_temporal "fastap10_temporal_from_$parent"
    fastap "$parent" fastap10_labels "fastap10_labels_unfrozen_from_$parent" model.freeze_backbone=false ;;
  sweep)
    parent=${2:?PARENT}
    timed $PY -m fastap_lab.train -m +experiment=fastap10 augment="$(augment_of "$parent")" \
      "$(backbone_of "$parent")" "model.pretrained=\${latest_checkpoint:$parent}" \
      experiment_name="fastap10_sweep_from_$parent" \
      loss.sigma=0.01,0.05,0.1 loss.bins=10,100 model.freeze_projector=false,true ;;
  *) echo "unknown step $1" >&2; exit 2 ;;
esac
