#!/usr/bin/env bash
# Issue 12: the label-free recipe (+experiment=surrogate10) over seeds on every phantom preset.
# Usage: bash experiments/surrogate10_seeds.sh OUT [seeds…]   (default seeds: 0 1 2)
# Finished runs are skipped, so the script can be re-run after an interruption (remove an
# unfinished run's folder first: a run folder is never reused). Each run evaluates itself on the held-out blocks (metrics.json: mAP and the raw-pixel guard).
set -euo pipefail
out=${1:?give an output folder}; shift
seeds=${*:-0 1 2}
for preset in phantom phantom_axial phantom_subtle phantom_subtle_drift; do
  for seed in $seeds; do
    [ -f "$out/$preset-seed$seed/FINISHED" ] && continue  # done in an earlier call
    python -m fastap_lab.train +experiment=surrogate10 data=$preset seed=$seed \
      hydra.run.dir="$out/$preset-seed$seed"
  done
done
python - "$out" <<'PY'
import json, statistics, sys
from pathlib import Path
rows = {}
for metrics in sorted(Path(sys.argv[1]).glob("*/inference/metrics.json")):
    preset = metrics.parents[1].name.rsplit("-seed", 1)[0]
    record = json.loads(metrics.read_text())
    rows.setdefault(preset, []).append((record["metrics"]["mAP"], record["pixel_baseline"]["pixels"]["mAP"]))
print("| preset | seeds | mAP per seed | mean ± sd | raw pixels (registered) | margin |")
print("|---|---|---|---|---|---|")
for preset, values in rows.items():
    maps = [m for m, _ in values]
    sd = statistics.stdev(maps) if len(maps) > 1 else 0.0
    pixels = values[0][1]
    print(f"| {preset} | {len(maps)} | {' / '.join(f'{m:.3f}' for m in maps)} | {statistics.mean(maps):.3f} ± {sd:.3f}"
          f" | {pixels:.3f} | {statistics.mean(maps) - pixels:+.3f} |")
PY
