"""Per-query retrieval metrics of cosine similarity, in chunks of queries on the CPU's threads.

Queries are scored against the gallery in chunks of ``chunk_size`` queries, so memory is
O(chunk_size * G) rather than O(Q * G); which items a query may see is
:class:`~fastap_lab.retrieval.exclusion.GalleryExclusion` (the exact top-k search shares it:
:mod:`fastap_lab.retrieval.topk`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from fastap_lab.retrieval.exclusion import GalleryExclusion, check_embeddings, unit_rows
from fastap_lab.retrieval.metrics import ranking_metrics
from fastap_lab.threads import map_blocks

# On the CPU a query chunk holds at most about this many scores, so that scoring and ranking
# it stay in one core's cache; threads take chunks as they come (see map_blocks).
CPU_CHUNK_ENTRIES = 1 << 18


def evaluate_embeddings(
    query: Tensor,
    gallery: Tensor,
    query_labels: Tensor,
    gallery_labels: Tensor,
    *,
    ks: Sequence[int] = (1, 5, 10, 20, 50),
    query_index: Tensor | None = None,
    query_times: Tensor | None = None,
    gallery_times: Tensor | None = None,
    query_groups: Tensor | None = None,
    gallery_groups: Tensor | None = None,
    exclusion_window: float = 0.0,
    chunk_size: int = 1024,
) -> dict[str, Tensor]:
    """Per-query retrieval metrics of cosine similarity; relevant = same label.

    Args:
        query: [Q, D] query embeddings.
        gallery: [G, D] gallery embeddings (same device).
        query_labels: [Q] long.
        gallery_labels: [G] long.
        ks: the k of precision@k / recall@k
            (:func:`~fastap_lab.retrieval.metrics.ranking_metrics`).
        query_index: [Q] long gallery index of each query itself, -1 if external; or None
            (see :class:`GalleryExclusion`, as for the next five).
        query_times: [Q] query times, needed when ``exclusion_window > 0``.
        gallery_times: [G] gallery times, needed when ``exclusion_window > 0``.
        query_groups: [Q] long group (video) ids of the queries; None = one group.
        gallery_groups: [G] long group (video) ids of the gallery; None = one group.
        exclusion_window: gallery items with |t_g - t_q| <= window in the query's group are
            excluded (if > 0).
        chunk_size: queries scored at once (on the CPU at most ``CPU_CHUNK_ENTRIES // G``, one
            chunk per thread at a time); peak memory ~ 6 bytes * chunk_size * G (scores and
            masks) + ~50 bytes per entry of a ranking block (2**18 entries on the CPU, 2**24 on
            accelerators).

    Returns:
        ``ranking_metrics`` output: float64 [Q] tensors per metric, NaN for queries without
        a valid relevant item, plus ``"num_relevant"``.
    """
    check_embeddings(query, gallery, chunk_size)
    _check_labels(query_labels, query, "query_labels")
    _check_labels(gallery_labels, gallery, "gallery_labels")
    exclusion = GalleryExclusion(
        query_index, query_times, gallery_times, query_groups, gallery_groups, exclusion_window
    )
    query, gallery = unit_rows(query), unit_rows(gallery)
    num_gallery = gallery.shape[0]
    if query.device.type == "cpu":  # cache-sized chunks, spread over threads by map_blocks
        chunk_size = max(1, min(chunk_size, CPU_CHUNK_ENTRIES // max(1, num_gallery)))
    row_chunks = [
        slice(start, min(start + chunk_size, query.shape[0]))
        for start in range(0, query.shape[0], chunk_size)
    ]

    def chunk_metrics(rows: slice) -> dict[str, Tensor]:
        scores = query[rows] @ gallery.T
        relevant = query_labels[rows, None] == gallery_labels
        valid = exclusion.valid_mask(rows, slice(0, num_gallery), num_gallery, query.device)
        return ranking_metrics(scores, relevant, ks, valid)

    chunks = map_blocks(chunk_metrics, row_chunks, query.device)
    if not chunks:
        return ranking_metrics(query.new_zeros(0, num_gallery), _no_pairs(query, num_gallery), ks)
    return {name: torch.cat([chunk[name] for chunk in chunks]) for name in chunks[0]}


def evaluate_all_vs_all(
    embeddings: Tensor,
    labels: Tensor,
    times: Tensor | None = None,
    groups: Tensor | None = None,
    exclusion_window: float = 0.0,
    ks: Sequence[int] = (1, 5, 10, 20, 50),
    chunk_size: int = 1024,
) -> dict[str, Tensor]:
    """Each of the N items queries all others (self excluded); [N, D], [N] -> per-query [N]."""
    return evaluate_embeddings(
        embeddings,
        embeddings,
        labels,
        labels,
        ks=ks,
        query_index=torch.arange(embeddings.shape[0], device=embeddings.device),
        query_times=times,
        gallery_times=times,
        query_groups=groups,
        gallery_groups=groups,
        exclusion_window=exclusion_window,
        chunk_size=chunk_size,
    )


def _no_pairs(query: Tensor, num_gallery: int) -> Tensor:
    return torch.zeros(0, num_gallery, dtype=torch.bool, device=query.device)


def _check_labels(labels: Tensor, embeddings: Tensor, name: str) -> None:
    if labels.shape != embeddings.shape[:1]:
        raise ValueError(f"{name} has shape {tuple(labels.shape)}, expected ({len(embeddings)},)")
