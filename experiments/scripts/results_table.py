"""Markdown results table of evaluated runs (the experiments/README.md tables).

    python experiments/scripts/results_table.py outputs/simsiam100/<run> outputs/evaluate/<time> ...

Columns come from each run's newest ``inference[-N]/metrics.json`` (or the evaluation folder
itself): held-out metrics, the external queries' positives in their top 10 / 50 (gallery: all
frames), the collapse symptom and effective rank, and the run's training time.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fastap_lab.report.collect import load_run, read_epochs

HEADER = ("run", "mAP", "P@1", "P@10", "P@50", "R@10", "MAP@R", "invivo.png top 10 / 50",
          "invivo_exhale.png top 10 / 50", "pairs > 0.99", "eff. rank", "train s")  # fmt: skip


def row(path: Path) -> list[str]:
    run = load_run(path, with_parent=False)
    if run.evaluation is None:
        return [f"{path.parent.name}/{path.name} (not evaluated)"] + ["–"] * (len(HEADER) - 1)
    record = run.evaluation.metrics
    metrics = record["metrics"]
    tables = record.get("positives_in_tables") or {}

    def positives(name: str) -> str:
        counts = tables.get(name) or {}
        return f"{counts.get('10', '–')}/10, {counts.get('50', '–')}/50"

    if record.get("checkpoint"):  # a run, or one evaluation folder of a run
        run_dir = Path(record["checkpoint"]).parent.parent
        name = f"{run_dir.parent.name}/{run_dir.name}/{run.evaluation.path.name}"
        name += f" ({record['embed_layer']})" if record.get("embed_layer") else ""
    else:
        name, run_dir = f"{record['model']} baseline", None
    epochs = read_epochs(run_dir / "metrics.csv") if run_dir else []
    seconds = sum(e.get("train/epoch_time_s", 0.0) for e in epochs)
    return [
        name,
        *(
            f"{metrics[k]:.3f}"
            for k in ("mAP", "precision@1", "precision@10", "precision@50", "recall@10", "map@r")
        ),  # fmt: skip
        positives("invivo.png"),
        positives("invivo_exhale.png"),
        f"{record['diagnostics']['fraction_pairs_above_0.99']:.4f}",
        f"{record['diagnostics']['effective_rank']:.1f}",
        f"{seconds:.0f}" if seconds else "–",
    ]


def main(paths: list[str]) -> None:
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for path in paths:
        print("| " + " | ".join(row(Path(path))) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
