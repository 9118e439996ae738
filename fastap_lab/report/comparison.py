"""Report sections 4–6: retrieval tables side by side, differences between two runs, notes."""

from __future__ import annotations

import re

from fastap_lab.report import facts
from fastap_lab.report.collect import Evaluation, number
from fastap_lab.report.document import (
    Block,
    BulletList,
    Figure,
    Gap,
    Heading,
    Paragraph,
    Table,
)
from fastap_lab.report.sections import (
    DASH,
    Context,
    f4,
    metric_label,
    not_evaluated,
    paths_for_notes,
    signed,
)

TABLE_NAME = re.compile(r"^(internal|external)_\d+_(.*)$")


def retrieval(c: Context) -> list[Block]:
    """Section 4: the retrieval grid and each retrieval table, beside the baseline's."""
    t, ev = c.t, c.run.evaluation
    blocks: list[Block] = [Heading(2, t("s4"))]
    if ev is None:
        return blocks + [not_evaluated(c)]
    blocks.append(Figure(ev.path / "retrieval_grid.png", t("retrieval_grid"), markdown=False))
    base = c.baseline.evaluation if c.baseline is not None else None
    names = list(ev.tables) + [n for n in (base.tables if base else {}) if n not in ev.tables]
    names.sort(key=lambda name: (not name.startswith("internal"), name))  # internal first
    if not names:
        return blocks + [Paragraph(t("no_tables", path=ev.path))]
    for number_, name in enumerate(names, start=1):
        blocks += table_block(c, f"4.{number_}", name, ev, base)
    return blocks + [Gap()]


def table_block(
    c: Context, heading: str, name: str, ev: Evaluation, base: Evaluation | None
) -> list[Block]:
    """One retrieval table ``name``: its heading, positives and score range, the rows."""
    t = c.t
    match = TABLE_NAME.match(name)
    kind, query = (match.group(1), match.group(2)) if match else ("internal", name)
    this_rows = ev.tables.get(name, [])
    base_rows = base.tables.get(name, []) if base else []
    this_pos = _positives(ev, query)
    if base is not None:
        items = [t("positives_vs", this=this_pos, base=_positives(base, query))]
    else:
        items = [t("positives", this=this_pos)]
    if this_rows:
        scores = [number(r["score"]) for r in this_rows]
        items.append(
            t(
                "score_range",
                k=len(scores),
                low=f4(min(scores)),
                high=f4(max(scores)),
                gap=f4(max(scores) - min(scores)),
            )
        )
    lead = None if this_rows else t("only_baseline")
    return [
        Heading(3, f"{heading} {t(kind)}: {query}"),
        BulletList(tuple(items), lead),
        side_by_side(c, this_rows, base_rows),
    ]


def _positives(ev: Evaluation, query: str) -> str:
    """``6/10, 14/20, 32/50`` from metrics.json's positives_in_tables (query name without suffix)."""
    for key, counts in (ev.metrics.get("positives_in_tables") or {}).items():
        if re.sub(r"[^A-Za-z0-9_.-]+", "_", key.rsplit(".", 1)[0]) == query and counts:
            return ", ".join(f"{v}/{k}" for k, v in counts.items())
    return DASH


def side_by_side(c: Context, this_rows: list[dict], base_rows: list[dict]) -> Table:
    """Ranked rows of this run, with the baseline's rows beside them when there are any."""
    head = ["Rank", "Frame", "Score", "Label"]
    if base_rows:
        tag = c.t("baseline")
        head += [f"Frame ({tag})", f"Score ({tag})", f"Label ({tag})"]
    rows = []
    for rank in range(max(len(this_rows), len(base_rows))):
        cells = [str(rank + 1), *_cells(this_rows, rank)]
        if base_rows:
            cells += _cells(base_rows, rank)
        rows.append(tuple(cells))
    return Table(tuple(head), tuple(rows))


def _cells(rows: list[dict], rank: int) -> list[str]:
    if rank >= len(rows):
        return [DASH] * 3
    row = rows[rank]
    return [row["frame"], row["score"], row.get("label") or DASH]


def differences(c: Context) -> list[Block]:
    """Section 5: per-query changes against the baseline, similarity spread, per-query table."""
    t, ev = c.t, c.run.evaluation
    blocks: list[Block] = [Heading(2, t("s5"))]
    if ev is None:
        return blocks + [not_evaluated(c)]
    base = c.baseline.evaluation if c.baseline is not None else None
    if base is None:
        blocks.append(Paragraph(t("no_baseline")))
    else:
        blocks += per_query_lines(c, ev, base)
    return blocks + spread_table(c, ev, base) + per_query_table(c, ev)


def per_query_lines(c: Context, ev: Evaluation, base: Evaluation) -> list[Block]:
    """Counts and top lists of queries whose AP moved, baseline (A) → this run (B)."""
    t = c.t
    reason = facts.same_query_set(base, ev)
    if reason is not None:
        return [Paragraph(t("mismatch", reason=reason))]
    diffs = facts.query_diffs(base, ev)
    column = facts.top_k_column(ev.per_query) or "precision@10"
    k = column.split("@")[1]
    counts = facts.diff_counts(diffs, c.threshold)
    blocks: list[Block] = [
        Paragraph(
            t(
                "diff_counts",
                total=len(diffs),
                threshold=c.threshold,
                improved=counts.improved,
                degraded=counts.degraded,
                unchanged=counts.unchanged,
                k=k,
                changed=counts.positives_changed,
            )
        )
    ]
    improved = [d for d in diffs if d.delta > c.threshold][: c.top]
    degraded = [d for d in reversed(diffs) if d.delta < -c.threshold][: c.top]
    for title, chosen in (("improved_most", improved), ("degraded_most", degraded)):
        rows = tuple(_query_row(t, d, k) for d in chosen) or (t("none"),)
        blocks += [Paragraph(f"**{t(title)}**"), BulletList(rows)]
    return blocks + [Gap()]


def _query_row(t, d: facts.QueryDiff, k: str) -> str:
    return t(
        "query_row",
        frame=d.frame,
        label=d.label,
        ap_a=f4(d.ap_a),
        ap_b=f4(d.ap_b),
        delta=signed(d.delta),
        k=k,
        pos_a=d.positives_a,
        pos_b=d.positives_b,
    )


def spread_table(c: Context, ev: Evaluation, base: Evaluation | None) -> list[Block]:
    """The similarity-spread figures of this run (and the baseline's, with the change)."""
    t = c.t
    this = facts.spread(ev)
    other = facts.spread(base) if base is not None else None
    head = [t("figure"), t("this_run")] + ([t("baseline"), t("delta")] if other else [])
    rows = []
    keys = [
        "share_above_099",
        "positive_mean",
        "negative_mean",
        "pos_neg_gap",
        "mean_cosine",
        "effective_rank",
        "uniformity",
        "dimension_std",
        "embedding_std_all",
    ]
    for values in (this, other):
        if values is not None:
            values["pos_neg_gap"] = values["positive_mean"] - values["negative_mean"]
    for key in keys:
        show, change = (_percent, _points) if key == "share_above_099" else (f4, signed)
        cells = [t(key), show(this[key])]
        if other:
            cells += [show(other[key]), change(this[key] - other[key])]
        rows.append(tuple(cells))
    return [Heading(3, t("spread")), Table(tuple(head), tuple(rows))]


def per_query_table(c: Context, ev: Evaluation) -> list[Block]:
    """per_query.csv as a sortable table (HTML only: report.md names the file in its notes)."""
    if not ev.per_query:
        return []
    columns = [name for name in ev.per_query[0] if name != "index"]
    text = {"frame", "label"}
    rows = tuple(
        tuple(row[n] if n in text else f4(number(row[n])) for n in columns) for row in ev.per_query
    )
    header = tuple(PER_QUERY_LABELS.get(n) or metric_label(n) for n in columns)
    caption = c.t("per_query", path=ev.path / "per_query.csv")
    return [Table(header, rows, sortable=True, markdown=False, caption=caption)]


PER_QUERY_LABELS = {"frame": "Frame", "label": "Label", "num_relevant": "Relevant", "ap": "AP"}


def _percent(value: float) -> str:
    return DASH if value != value else f"{100 * value:.3f} %"


def _points(value: float) -> str:
    return DASH if value != value else f"{100 * value:+.3f} pt"


def notes(c: Context) -> list[Block]:
    """Section 6: where to look further, the evaluation's notes and the diagnostics figure."""
    ev = c.run.evaluation
    if ev is None:
        return []
    grid, diag = paths_for_notes(c)
    base = c.baseline.path if c.baseline is not None else "<baseline run>"
    see_also = c.t("see_also", grid=grid, diag=diag, a=base, b=c.run.path)
    return [
        Heading(2, c.t("s6")),
        BulletList((see_also, *(ev.metrics.get("notes") or []))),
        Figure(diag, c.t("diagnostics"), markdown=False),
    ]
