"""The per-query comparison of two runs: per_query_diff.csv and per_query_diff.md.

The work of ``python -m fastap_lab.compare RUN_A RUN_B``: each run's newest evaluation (a run
never evaluated is evaluated first), refused unless both evaluated the same query set; the
queries sorted by AP_B − AP_A, best first (:func:`fastap_lab.report.facts.query_diffs`), written
into ``RUN_B/compare_vs_<RUN_A name>[-N]/`` or ``out`` (never over an earlier comparison).
"""

from __future__ import annotations

from pathlib import Path

from fastap_lab import io
from fastap_lab.errors import DataError
from fastap_lab.evaluation.report import claim_output_dir, csv_text
from fastap_lab.report import facts
from fastap_lab.report.collect import Evaluation, evaluated_run
from fastap_lab.report.sections import f4, signed

HEADER = [
    "frame",
    "label",
    "AP_A",
    "AP_B",
    "delta",
    "P@{k}_A",
    "P@{k}_B",
    "top{k}_positives_A",
    "top{k}_positives_B",
]


def evaluated(path: Path) -> Evaluation:
    """The newest evaluation of the run at ``path``, evaluating it now when it has none."""
    run = evaluated_run(path, with_parent=False)
    if run.evaluation is None:
        raise DataError(
            f"{run.path}: no inference/ folder and no checkpoints/last.ckpt to evaluate"
        )
    if not run.evaluation.per_query:
        raise DataError(f"{run.evaluation.path}: no per_query.csv (the data has no labels?)")
    return run.evaluation


def diff_csv(diffs: list[facts.QueryDiff], k: str) -> str:
    """diff.csv: one row per query with its AP, precision@K and top-K positives in both runs."""
    rows = [
        (
            d.frame,
            d.label,
            repr(d.ap_a),
            repr(d.ap_b),
            repr(d.delta),
            repr(d.p_a),
            repr(d.p_b),
            d.positives_a,
            d.positives_b,
        )
        for d in diffs
    ]
    return csv_text([h.format(k=k) for h in HEADER], rows)


def diff_markdown(a: Evaluation, b: Evaluation, diffs, k: str, threshold: float) -> str:
    """diff.md: improved / degraded / unchanged counts, then the 10 largest changes each way."""
    counts = facts.diff_counts(diffs, threshold)
    lines = [
        "# Per-query comparison: B vs A",
        "",
        f"- A: `{a.path}`",
        f"- B: `{b.path}`",
        f"- {len(diffs)} queries; AP change beyond ±{threshold}: improved **{counts.improved}**,"
        f" degraded **{counts.degraded}**, unchanged {counts.unchanged};"
        f" positives in the top {k} changed for {counts.positives_changed}",
        f"- mAP A {f4(a.metrics['metrics']['mAP'])}, B {f4(b.metrics['metrics']['mAP'])}",
        "",
    ]
    improved = [d for d in diffs if d.delta > threshold][:10]
    degraded = [d for d in reversed(diffs) if d.delta < -threshold][:10]
    for title, chosen in (
        ("Improved most (top 10)", improved),
        ("Degraded most (top 10)", degraded),
    ):
        lines += [
            f"## {title}",
            "",
            f"| frame | label | AP A | AP B | Δ | top-{k} positives A → B |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {d.frame} | {d.label} | {f4(d.ap_a)} | {f4(d.ap_b)} | {signed(d.delta)} |"
            f" {d.positives_a} → {d.positives_b} |"
            for d in chosen
        ] or ["| — | | | | | |"]
        lines.append("")
    return "\n".join(lines)


def compare(run_a: Path, run_b: Path, out: Path | None = None, threshold: float = 0.01) -> Path:
    """Write the comparison of ``run_b`` against ``run_a``; return the output folder."""
    a, b = evaluated(run_a), evaluated(run_b)
    reason = facts.same_query_set(a, b)
    if reason is not None:
        raise DataError(
            f"{a.path} and {b.path} evaluated {reason}; evaluate both on the same data and split"
            " (python -m fastap_lab.evaluate ckpt_path=<run> data=… eval.split=…)"
        )
    diffs = facts.query_diffs(a, b)
    k = (facts.top_k_column(a.per_query) or "precision@10").split("@")[1]
    folder = claim_output_dir(Path(out) if out else Path(run_b) / f"compare_vs_{Path(run_a).name}")
    io.write_text(folder / "per_query_diff.csv", diff_csv(diffs, k))
    io.write_text(folder / "per_query_diff.md", diff_markdown(a, b, diffs, k, threshold))
    print(folder)
    return folder
