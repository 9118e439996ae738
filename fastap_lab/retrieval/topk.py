"""Exact cosine top-k search over a gallery in memory-bounded chunks, ties to the lower index.

Used by the evaluation's retrieval tables and ``python -m fastap_lab.search``; the same
exclusions as the metrics (:class:`~fastap_lab.retrieval.exclusion.GalleryExclusion`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from fastap_lab.errors import ConfigError
from fastap_lab.retrieval.exclusion import GalleryExclusion, check_embeddings, unit_rows


def topk_search(
    query: Tensor,
    gallery: Tensor,
    k: int,
    *,
    query_index: Tensor | None = None,
    query_times: Tensor | None = None,
    gallery_times: Tensor | None = None,
    query_groups: Tensor | None = None,
    gallery_groups: Tensor | None = None,
    exclusion_window: float = 0.0,
    chunk_size: int = 1024,
    gallery_chunk_size: int = 65536,
    unit_gallery: bool = False,
) -> tuple[Tensor, Tensor]:
    """Exact cosine top-k with the exclusions of the metrics (:class:`GalleryExclusion`).

    Ties rank the lower gallery index first (the chunked scores must tie exactly; matmul
    rounding can differ by an ulp between chunkings for mathematically equal cosines). The
    effective k' = min(k, fewest valid gallery items of any query), so every returned entry is
    a real, non-excluded item; callers compare ``indices.shape[1]`` with ``k`` to report
    clipping.

    Args:
        query: [Q, D].
        gallery: [G, D].
        k: wanted neighbours per query (>= 1).
        query_index: [Q] long gallery index of each query itself, -1 if external; or None
            (see :class:`GalleryExclusion`, as for the next five).
        query_times: [Q] query times, needed when ``exclusion_window > 0``.
        gallery_times: [G] gallery times, needed when ``exclusion_window > 0``.
        query_groups: [Q] long group (video) ids of the queries; None = one group.
        gallery_groups: [G] long group (video) ids of the gallery; None = one group.
        exclusion_window: gallery items with |t_g - t_q| <= window in the query's group are
            excluded (if > 0).
        chunk_size: queries scored at once; memory is O(chunk_size * gallery_chunk_size).
        gallery_chunk_size: gallery items scored at once per query chunk (>= 1).
        unit_gallery: the gallery rows are already L2-normalised (a stored gallery): skip
            normalising them again, which costs as much as the search itself for one query.

    Returns:
        scores: [Q, k'] cosine similarities, best first; indices: [Q, k'] long gallery indices.
    """
    check_embeddings(query, gallery, chunk_size)
    if k < 1 or gallery_chunk_size < 1:
        raise ConfigError(f"topk_search: k={k} and gallery_chunk_size must be >= 1")
    exclusion = GalleryExclusion(
        query_index, query_times, gallery_times, query_groups, gallery_groups, exclusion_window
    )
    query, gallery = unit_rows(query), (gallery if unit_gallery else unit_rows(gallery))
    best_scores, best_indices = [query.new_zeros(0, k)], [_no_indices(query, k)]
    fewest_valid = gallery.shape[0]
    for start in range(0, query.shape[0], chunk_size):
        rows = slice(start, min(start + chunk_size, query.shape[0]))
        scores, indices, num_valid = _topk_rows(
            query, gallery, k, exclusion, rows, gallery_chunk_size
        )
        best_scores.append(scores)
        best_indices.append(indices)
        fewest_valid = min(fewest_valid, num_valid)
    k_effective = min(k, fewest_valid)
    return (
        torch.cat([s[:, :k_effective] for s in best_scores]),
        torch.cat([i[:, :k_effective] for i in best_indices]),
    )


def _topk_rows(
    query: Tensor,
    gallery: Tensor,
    k: int,
    exclusion: GalleryExclusion,
    rows: slice,
    gallery_chunk_size: int,
) -> tuple[Tensor, Tensor, int]:
    """Best k (scores, indices) of one query chunk over the gallery, and its min valid count."""
    best_scores = query.new_empty(rows.stop - rows.start, 0)
    best_indices = torch.empty_like(best_scores, dtype=torch.long)
    valid_count = torch.zeros(best_scores.shape[0], dtype=torch.long, device=query.device)
    for start in range(0, gallery.shape[0], gallery_chunk_size):
        cols = slice(start, min(start + gallery_chunk_size, gallery.shape[0]))
        scores = query[rows] @ gallery[cols].T
        if exclusion.excludes_nothing:  # a stored gallery searched by outside images
            valid_count += cols.stop - cols.start
        else:
            valid = exclusion.valid_mask(rows, cols, cols.stop - cols.start, query.device)
            valid_count += valid.sum(1)
            scores = scores.masked_fill(~valid, float("-inf"))
        chunk_scores, chunk_indices = _stable_topk(scores, k)
        best_scores, best_indices = merge_topk(
            torch.cat([best_scores, chunk_scores], 1),
            torch.cat([best_indices, chunk_indices + start], 1),
            k,
        )
    return best_scores, best_indices, int(valid_count.min().item())


def _stable_topk(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top-k of each row with ties broken by the lower column.

    Top min(k, G) of each row of [C, G], ties to the lower column; torch.topk's tie order
    is unspecified, so the k-th value's ties are resolved by column explicitly.
    """
    k = min(k, scores.shape[1])
    values, columns = scores.topk(k, dim=1)
    kth_value = values[:, -1:]
    if bool(((scores == kth_value).sum(1) == (values == kth_value).sum(1)).all()):
        # No item tied with the k-th was left out: topk chose the same set; order it.
        return merge_topk(values, columns, k)
    above = scores > kth_value
    tied = scores == kth_value
    tied_slots = k - above.sum(1, keepdim=True)
    chosen = above | (tied & (tied.cumsum(1) <= tied_slots))
    # Exactly k chosen per row; nonzero lists them row by row in column order.
    columns = chosen.nonzero()[:, 1].reshape(scores.shape[0], k)
    return merge_topk(scores.gather(1, columns), columns, k)


def merge_topk(scores: Tensor, indices: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Best k of candidate (scores, unique indices) [C, M], ordered by score then index."""
    by_index = indices.argsort(dim=1)
    scores, indices = scores.gather(1, by_index), indices.gather(1, by_index)
    by_score = scores.sort(dim=1, descending=True, stable=True).indices[:, :k]
    return scores.gather(1, by_score), indices.gather(1, by_score)


def _no_indices(query: Tensor, k: int) -> Tensor:
    return torch.zeros(0, k, dtype=torch.long, device=query.device)
