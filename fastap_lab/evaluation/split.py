"""Retrieval metrics of one evaluation split, for training and for evaluation.

The one function behind ``val/…`` during training
(:class:`fastap_lab.lit.retrieval_callback.RetrievalEvaluation`), the metrics of
``python -m fastap_lab.evaluate`` and its raw-pixel guard. Pure torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fastap_lab.retrieval.metrics import cutoffs_within_gallery, single_label_warning, summarize
from fastap_lab.retrieval.search import evaluate_all_vs_all


@dataclass
class SplitMetrics:
    """Metrics of one split: summary, per-query values and notes.

    ``summary``: mean metrics (:func:`~fastap_lab.retrieval.metrics.summarize`) plus ``ks``;
    ``per_query``: name -> float [M] on the CPU; ``ks_note``: the K dropped because they exceed
    the gallery (:func:`~fastap_lab.retrieval.metrics.cutoffs_within_gallery`, one K policy),
    or None; ``label_warning``: every frame has the same label, or None.
    """

    summary: dict
    per_query: dict[str, torch.Tensor]
    ks_note: str | None
    label_warning: str | None


def evaluate_split(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    times: torch.Tensor,
    groups: torch.Tensor,
    *,
    exclusion_window: float,
    ks: Sequence[int],
) -> SplitMetrics:
    """All-vs-all retrieval within one split.

    All-vs-all retrieval within one split: every frame a query, the others its gallery,
    same-recording frames within ``exclusion_window`` time units left out.

    Args:
        embeddings: float [M, D] of the split's frames (any device; the search runs there).
        labels: int64 [M] label of each frame.
        times: float [M] time of each frame.
        groups: int64 [M] recording of each frame.
        exclusion_window: see :func:`~fastap_lab.retrieval.search.evaluate_all_vs_all`.
        ks: requested cut-offs of precision@K / recall@K.
    """
    kept, note = cutoffs_within_gallery(ks, embeddings.shape[0] - 1)
    device = embeddings.device
    per_query = evaluate_all_vs_all(
        embeddings, labels.to(device), times.to(device), groups.to(device),
        exclusion_window=exclusion_window, ks=kept,
    )  # fmt: skip
    per_query = {name: values.cpu() for name, values in per_query.items()}
    return SplitMetrics(
        summary={**summarize(per_query), "ks": kept}, per_query=per_query, ks_note=note,
        label_warning=single_label_warning(labels),
    )  # fmt: skip
