"""Matplotlib figures of the notebooks; each returns the Figure (the caller shows or saves it)."""

from __future__ import annotations

import torch

from fastap_lab.analysis.distribution import evaluated_part, project_2d
from fastap_lab.analysis.query_review import QueryReview
from fastap_lab.analysis.runs import RunEmbeddings
from fastap_lab.evaluation.diagnostics import diagnose, dimension_std, draw_pair_histograms
from fastap_lab.evaluation.grid import QUERY, border_colour, show_image


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def plot_dimension_std(runs: list[RunEmbeddings]):
    """Per-dimension std of the evaluated embeddings, sorted, times sqrt(D) (1 = isotropic)."""
    fig, axis = _pyplot().subplots(figsize=(7, 3.5))
    for run in runs:
        stds = dimension_std(evaluated_part(run)[0]).sort(descending=True).values
        axis.plot((stds * stds.numel() ** 0.5).numpy(), label=f"{run.name} (D={stds.numel()})")
    axis.axhline(1.0, color="k", linestyle=":", linewidth=1)
    axis.set(xlabel="dimension (sorted)", ylabel="std · √D", title="per-dimension spread")
    axis.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_similarity_histograms(runs: list[RunEmbeddings], max_pairs: int = 200_000):
    """Cosine similarity of same-label (positive) and other-label (negative) pairs, per run."""
    fig, axes = _pyplot().subplots(1, len(runs), figsize=(4.5 * len(runs), 3.5), squeeze=False)
    for axis, run in zip(axes[0], runs, strict=True):
        embeddings, labels = evaluated_part(run)
        _, similarities = diagnose(embeddings, labels, max_pairs=max_pairs)
        draw_pair_histograms(axis, similarities)
        axis.set(title=run.name, xlabel="cosine similarity")
        axis.title.set_fontsize(8)
        axis.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_projection(runs: list[RunEmbeddings], only_evaluated: bool = False):
    """PCA to 2-D per run (columns), coloured by label (top row) and by time (bottom row)."""
    fig, axes = _pyplot().subplots(2, len(runs), figsize=(4.5 * len(runs), 8), squeeze=False)
    for column, run in enumerate(runs):
        keep = run.evaluated if only_evaluated else torch.ones_like(run.evaluated)
        points = project_2d(run.embeddings[keep]).numpy()
        labels = None if run.labels is None else run.labels[keep].numpy()
        by_label = axes[0, column].scatter(points[:, 0], points[:, 1], s=6, cmap="coolwarm",
                                           c=labels if labels is not None else "0.5")  # fmt: skip
        by_time = axes[1, column].scatter(points[:, 0], points[:, 1], s=6, cmap="viridis",
                                          c=run.times[keep].numpy())  # fmt: skip
        axes[0, column].set_title(f"{run.name}\ncoloured by label", fontsize=8)
        axes[1, column].set_title("coloured by time", fontsize=8)
        if labels is not None:
            fig.colorbar(by_label, ax=axes[0, column], label="label")
        fig.colorbar(by_time, ax=axes[1, column], label="time")
    fig.tight_layout()
    return fig


def plot_query_review(run: RunEmbeddings, review: QueryReview, context_rows: int = 5):
    """Figure of a query, its top-K hits and the frames around the first hits.

    Top row: the query and its top-K. Below: for the first ``context_rows`` hits, the frames
    around the hit in time (hit in the middle), titled with time, score and label.
    """
    plt, frames = _pyplot(), run.frames()
    hits = review.hits[:context_rows]
    width = max(1 + len(review.hits), max((len(h.context) for h in hits), default=1))
    fig, axes = plt.subplots(1 + len(hits), width, figsize=(1.3 * width, 1.55 * (1 + len(hits))),
                             squeeze=False)  # fmt: skip
    query_label = "?" if review.label is None else review.label
    show_image(axes[0, 0], review.image, f"{review.name[:16]}\nquery, label {query_label}", QUERY)
    for axis, hit in zip(axes[0, 1:], review.hits, strict=False):
        label = None if run.labels is None else int(run.labels[hit.index])
        show_image(axis, frames.images[hit.index], f"#{hit.rank} {hit.score:.3f}\nlabel {label}",
              border_colour(label, review.label))  # fmt: skip
    for row, hit in zip(axes[1:], hits, strict=True):
        for axis, index, score in zip(row, hit.context, hit.context_scores, strict=False):
            label = None if run.labels is None else int(run.labels[index])
            marker = f"#{hit.rank} " if index == hit.index else ""
            title = f"{marker}t={float(run.times[index]):g}\n{score:.3f} label {label}"
            show_image(axis, frames.images[index], title, border_colour(label, review.label))
    for axis in axes.flat:
        if not axis.images:
            axis.axis("off")
    fig.tight_layout()
    return fig
