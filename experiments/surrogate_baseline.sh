#!/usr/bin/env bash
# The label-free surrogate as the embedding (python -m fastap_lab.evaluate baseline=surrogate) on
# every phantom preset, held-out blocks split, raw pixels scored beside it (metrics.json
# pixel_baseline); on the cross-contrast preset also with the bridge to its T2 target sequence.
# Usage: bash experiments/surrogate_baseline.sh OUT     (≈ 1 min per preset on 2 CPU cores)
set -euo pipefail
out=${1:?usage: surrogate_baseline.sh OUT}
for preset in phantom phantom_axial phantom_subtle phantom_subtle_drift phantom_crosscontrast; do
  python -m fastap_lab.evaluate baseline=surrogate data=$preset hydra.run.dir="$out/$preset"
done
root=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['data_root'])" \
  "$out/phantom_crosscontrast/metrics.json")
python -m fastap_lab.evaluate baseline=surrogate data=phantom_crosscontrast \
  eval.adapt.target="$root/target" hydra.run.dir="$out/phantom_crosscontrast_bridge"
python - "$out" <<'PY'
import json, sys
from pathlib import Path
print("| run | surrogate mAP / P@1 / P@10 | raw pixels mAP / P@1 / P@10 | external queries: surrogate · pixels |")
print("| --- | --- | --- | --- |")
for folder in sorted(Path(sys.argv[1]).iterdir()):
    m = json.loads((folder / "metrics.json").read_text())
    ours, px = m["metrics"], m["pixel_baseline"]["pixels"]
    fmt = lambda r: " / ".join(f"{r[k]:.3f}" for k in ("mAP", "precision@1", "precision@10"))
    tops = lambda found: "; ".join(f"{q} {v['10']}/10, {v['50']}/50" for q, v in found.items()
                                   if not q.startswith("frame_"))
    ext = f"{tops(m['positives_in_tables'])} · {tops(m['pixel_baseline']['positives_in_tables'])}"
    print(f"| {folder.name} | {fmt(ours)} | {fmt(px)} | {ext} |")
PY
