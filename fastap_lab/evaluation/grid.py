"""retrieval_grid.png: each query (row) beside its top-K frames, bordered by relevance."""

from __future__ import annotations

from pathlib import Path

import torch

from fastap_lab import io
from fastap_lab.evaluation.tables import RetrievalTable

RELEVANT, IRRELEVANT, UNKNOWN, QUERY = "tab:green", "tab:red", "0.6", "tab:blue"
MAX_ROWS = 24  # a taller figure is unreadable; the tables list every query


def show_image(axis, image: torch.Tensor, title: str, colour: str) -> None:
    """Draw a uint8 [C, H, W] image with a thick coloured frame and a small title."""
    pixels = image.permute(1, 2, 0).cpu().numpy()
    axis.imshow(pixels[..., 0] if pixels.shape[2] == 1 else pixels, cmap="gray", vmin=0, vmax=255)
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(3)
    axis.set_title(title, fontsize=6, color=colour)


def border_colour(label: int | None, query_label: int | None) -> str:
    """Green for the query's label, red for another, grey when either is unknown."""
    if label is None or query_label is None:
        return UNKNOWN
    return RELEVANT if label == query_label else IRRELEVANT


def write_grid(path: str | Path, tables: list[RetrievalTable], frames) -> Path:
    """Write the retrieval grid image: one row per query, its ranked frames coloured.

    One row per table (first ``MAX_ROWS``): the query, then its ranked frames titled with
    rank, score and label; green = same label as the query, red = other label, grey = unknown.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = tables[:MAX_ROWS]
    columns = 1 + max((len(t.indices) for t in tables), default=0)
    fig, axes = plt.subplots(len(tables), columns, figsize=(1.25 * columns, 1.45 * len(tables)),
                             squeeze=False)  # fmt: skip
    for row, table in zip(axes, tables, strict=True):
        query = table.query
        label = "?" if query.label is None else query.label
        show_image(row[0], query.image, f"{query.name[:18]}\nquery, label {label}", QUERY)
        for axis, index, score, rank in zip(
            row[1:], table.indices, table.scores, range(1, columns), strict=False
        ):
            frame_label = None if frames.labels is None else int(frames.labels[index])
            title = f"#{rank} {score:.3f}\nlabel {'?' if frame_label is None else frame_label}"
            show_image(axis, frames.images[index], title, border_colour(frame_label, query.label))
        for axis in row[1 + len(table.indices) :]:
            axis.axis("off")
    fig.tight_layout()
    io.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return Path(path)
