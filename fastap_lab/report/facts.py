"""Facts computed from runs, free of wording: training summaries and per-query differences."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fastap_lab.report.collect import Evaluation, Run, number

MILESTONES = (0.2, 0.4, 0.8)  # fractions of the epochs, as the reference report quotes them
METRIC_ORDER = ("mAP", "precision@", "recall@", "r_precision", "map@r")


@dataclass
class StageSummary:
    """Loss and timing of one training stage, from its metrics.csv."""

    stage: str
    epochs: int
    final_loss: float
    best_loss: float
    best_epoch: int
    milestones: list[tuple[int, float]]
    epoch_time: tuple[float, float, float] | None  # min, max, total seconds
    z_std: tuple[float, float] | None  # first, last (SimSiam collapse monitor)
    val_map: list[tuple[int, float]]  # (epoch, val/mAP) where logged


def stage_summary(run: Run) -> StageSummary | None:
    """None when the run has no per-epoch train/loss (e.g. trained with ``logger={}``)."""
    rows = run.epochs
    if not rows:
        return None
    losses = [row["train/loss"] for row in rows]
    best = min(range(len(rows)), key=losses.__getitem__)
    # A short run maps several fractions onto one epoch: each epoch is quoted once.
    positions = sorted({max(0, math.ceil(f * len(rows)) - 1) for f in MILESTONES})
    milestones = [(rows[p]["epoch"], losses[p]) for p in positions]
    times = [row["train/epoch_time_s"] for row in rows if "train/epoch_time_s" in row]
    z_std = [row["train/z_std"] for row in rows if "train/z_std" in row]
    return StageSummary(
        stage=run.stage,
        epochs=len(rows),
        final_loss=losses[-1],
        best_loss=losses[best],
        best_epoch=rows[best]["epoch"],
        milestones=milestones,
        epoch_time=(min(times), max(times), sum(times)) if times else None,
        z_std=(z_std[0], z_std[-1]) if z_std else None,
        val_map=[(row["epoch"], row["val/mAP"]) for row in rows if "val/mAP" in row],
    )


def metric_names(metrics: dict) -> list[str]:
    """The scalar metrics of metrics.json in report order (mAP, P@K, R@K, R-precision, MAP@R)."""
    ks = metrics.get("ks") or []
    names = ["mAP", *(f"precision@{k}" for k in ks), *(f"recall@{k}" for k in ks)]
    return [n for n in [*names, "r_precision", "map@r"] if isinstance(metrics.get(n), int | float)]


def top_k_column(per_query: list[dict]) -> str | None:
    """The per-query precision@k column the report compares, or None.

    ``precision@10``, or the largest logged precision@k with k ≤ 10 (a k beyond the
    gallery is not logged).
    """
    if not per_query:
        return None
    ks = [int(c.split("@")[1]) for c in per_query[0] if c.startswith("precision@")]
    ks = [k for k in ks if k <= 10] or ks
    return f"precision@{max(ks)}" if ks else None


@dataclass
class QueryDiff:
    """One query frame in two evaluations, A (baseline) and B: AP, precision@k, positives@k."""

    frame: str
    label: str
    ap_a: float
    ap_b: float
    p_a: float
    p_b: float
    positives_a: int
    positives_b: int

    @property
    def delta(self) -> float:
        """AP_B − AP_A."""
        return self.ap_b - self.ap_a


def same_query_set(a: Evaluation, b: Evaluation) -> str | None:
    """None when both evaluations scored the same query frames under the same rules, else why not."""
    frames_a = [row["frame"] for row in a.per_query]
    frames_b = [row["frame"] for row in b.per_query]
    if sorted(frames_a) != sorted(frames_b):
        only_a, only_b = set(frames_a) - set(frames_b), set(frames_b) - set(frames_a)
        return (
            f"different query frames ({len(frames_a)} vs {len(frames_b)};"
            f" {len(only_a)} only in the first, {len(only_b)} only in the second,"
            f" e.g. {sorted(only_a or only_b)[:3]})"
        )
    for key in ("split", "exclusion_window", "data_root"):
        if a.metrics.get(key) != b.metrics.get(key):
            return f"different {key} ({a.metrics.get(key)!r} vs {b.metrics.get(key)!r})"
    return None


def query_diffs(a: Evaluation, b: Evaluation) -> list[QueryDiff]:
    """Per query frame present in both per_query.csv files, sorted by AP_B − AP_A (best first)."""
    column = top_k_column(a.per_query)
    k = int(column.split("@")[1]) if column else 0
    rows_b = {row["frame"]: row for row in b.per_query}
    diffs = []
    for row_a in a.per_query:
        row_b = rows_b.get(row_a["frame"])
        if row_b is None or math.isnan(number(row_a["ap"])) or math.isnan(number(row_b["ap"])):
            continue  # a query without relevant frames has no AP
        p_a, p_b = (number(r.get(column)) if column else math.nan for r in (row_a, row_b))
        diffs.append(
            QueryDiff(
                row_a["frame"],
                row_a["label"],
                number(row_a["ap"]),
                number(row_b["ap"]),
                p_a,
                p_b,
                _count(p_a, k),
                _count(p_b, k),
            )
        )
    return sorted(diffs, key=lambda d: (-d.delta, d.frame))


def _count(precision: float, k: int) -> int:
    return -1 if math.isnan(precision) else round(precision * k)


@dataclass
class DiffCounts:
    """How many queries improved, degraded or stayed, and how many changed positives@k."""

    improved: int
    degraded: int
    unchanged: int
    positives_changed: int


def diff_counts(diffs: list[QueryDiff], threshold: float) -> DiffCounts:
    """Queries whose AP rose / fell by more than ``threshold``; those whose top-k positives moved."""
    improved = sum(d.delta > threshold for d in diffs)
    degraded = sum(d.delta < -threshold for d in diffs)
    changed = sum(d.positives_a != d.positives_b for d in diffs)
    return DiffCounts(improved, degraded, len(diffs) - improved - degraded, changed)


SPREAD_FIELDS = (
    ("fraction_pairs_above_0.99", "share_above_099"),
    ("positive_mean_cosine", "positive_mean"),
    ("negative_mean_cosine", "negative_mean"),
    ("mean_cosine", "mean_cosine"),
    ("effective_rank", "effective_rank"),
    ("uniformity", "uniformity"),
)


def spread(evaluation: Evaluation) -> dict[str, float]:
    """Similarity-spread figures of diagnostics.json plus the embedding std (NaN when absent)."""
    diagnostics = evaluation.diagnostics or {}
    values = {key: number(diagnostics.get(source)) for source, key in SPREAD_FIELDS}
    per_dim = (diagnostics.get("dimension_std") or {}).get("mean")
    values["dimension_std"] = number(per_dim)
    values["embedding_std_all"] = number(evaluation.embedding_std)
    return values
