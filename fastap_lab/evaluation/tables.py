"""Retrieval tables: each query's top-K gallery frames (rank, frame, score, label, time).

The tables are what a researcher reviews (as in the reference report): every query against
the whole gallery (all frames), with the count of same-label frames in the top K.
"""

from __future__ import annotations

import csv
import io as text_io
import re
from dataclasses import dataclass

import torch

from fastap_lab.data.queries import Query
from fastap_lab.retrieval.topk import topk_search

POSITIVE_CUTOFFS = (20, 50)  # counts reported beside the table's own K


@dataclass
class RetrievalTable:
    """One query's ranked gallery frames.

    ``positives`` maps a cut-off K to the number of frames with the query's label in the top K
    (None without labels).
    """

    query: Query
    indices: list[int]
    scores: list[float]
    positives: dict[int, int] | None


def build_tables(
    queries: list[Query],
    query_embeddings: torch.Tensor,
    gallery_embeddings: torch.Tensor,
    gallery_labels: torch.Tensor | None,
    table_k: int,
    include_self: bool,
) -> list[RetrievalTable]:
    """Top-``table_k`` tables of [Q, D] queries over an [N, D] gallery (same device).

    Internal queries do not retrieve their own frame unless ``include_self``.
    """
    if not queries:
        return []
    wanted = max(table_k, *POSITIVE_CUTOFFS)
    own_frame = [
        q.frame_index if q.frame_index is not None and not include_self else -1 for q in queries
    ]
    query_index = torch.tensor(own_frame, device=query_embeddings.device)
    scores, indices = topk_search(
        query_embeddings, gallery_embeddings, wanted, query_index=query_index
    )
    scores, indices = scores.cpu(), indices.cpu()
    tables = []
    for row, query in enumerate(queries):
        positives = None
        if gallery_labels is not None and query.label is not None:
            hits = (gallery_labels.cpu()[indices[row]] == query.label).long().cumsum(0)
            cutoffs = sorted({min(k, len(hits)) for k in (table_k, *POSITIVE_CUTOFFS)})
            positives = {k: int(hits[k - 1]) for k in cutoffs if k > 0}
        keep = min(table_k, indices.shape[1])
        tables.append(
            RetrievalTable(
                query, indices[row, :keep].tolist(), scores[row, :keep].tolist(), positives
            )
        )
    return tables


def table_rows(table: RetrievalTable, frames) -> list[dict]:
    """Rows ``rank, frame, score (4 decimals), label, time`` of a table over a FrameSet."""
    labels = frames.labels
    return [
        {
            "rank": rank,
            "frame": frames.names[index],
            "score": f"{score:.4f}",
            "label": "" if labels is None else int(labels[index]),
            "time": f"{float(frames.times[index]):g}",
        }
        for rank, (index, score) in enumerate(zip(table.indices, table.scores, strict=True), 1)
    ]


def table_csv(table: RetrievalTable, frames) -> str:
    """CSV text of one retrieval table: rank, frame, score, label, time."""
    buffer = text_io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["rank", "frame", "score", "label", "time"])
    writer.writeheader()
    writer.writerows(table_rows(table, frames))
    return buffer.getvalue()


def table_file_name(position: int, table: RetrievalTable) -> str:
    """``internal_00_frame_0000.csv``-style names, safe on every file system."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", table.query.name.rsplit(".", 1)[0])
    return f"{table.query.kind}_{position:02d}_{stem}.csv"


def summary_line(table: RetrievalTable) -> str:
    """``query label 1; positives (label 1) in top 10: 7/10, top 20: 12/20, top 50: 30/50``."""
    label = "unknown" if table.query.label is None else table.query.label
    if table.positives is None:
        return f"query label {label}; positives not counted (no labels)"
    counts = ", ".join(f"top {k}: {n}/{k}" for k, n in table.positives.items())
    return f"query label {label}; positives (label {label}) in {counts}"


def tables_markdown(tables: list[RetrievalTable], frames, title: str) -> str:
    """All tables as one Markdown document."""
    lines = [f"# {title}", ""]
    for table in tables:
        query = table.query
        where = f"frame #{query.frame_index}" if query.kind == "internal" else "external image"
        lines += [f"## {query.name} ({query.kind} query, {where})", "", summary_line(table), ""]
        lines += [f"- note: {note}" for note in query.notes] + ([""] if query.notes else [])
        lines += ["| rank | frame | score | label | time |", "| ---: | --- | ---: | ---: | ---: |"]
        lines += [
            f"| {r['rank']} | {r['frame']} | {r['score']} | {r['label']} | {r['time']} |"
            for r in table_rows(table, frames)
        ]
        lines.append("")
    return "\n".join(lines)
