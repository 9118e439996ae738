"""Chunked, memory-bounded cosine retrieval: per-query metrics and exact top-k search.

Both entry points score queries against the gallery in chunks of ``chunk_size`` queries, so
memory is O(chunk_size * G) rather than O(Q * G), and share one exclusion rule
(:class:`GalleryExclusion`): an item is left out of a query's gallery when it is the query
itself (``query_index``) or, with ``exclusion_window > 0``, when it lies within
``exclusion_window`` time units of the query in the same group (video), because adjacent
frames are near-duplicates that would make retrieval trivially easy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fastap_lab.errors import ConfigError
from fastap_lab.retrieval.metrics import ranking_metrics
from fastap_lab.threads import map_blocks

# On the CPU a query chunk holds at most about this many scores, so that scoring and ranking
# it stay in one core's cache; threads take chunks as they come (see map_blocks).
CPU_CHUNK_ENTRIES = 1 << 18


@dataclass(frozen=True)
class GalleryExclusion:
    """Which gallery items each query must not see. All tensors on one device.

    Attributes:
        query_index: [Q] long, gallery index of the query itself, -1 if external; or None.
        query_times / gallery_times: [Q] / [G] times, used when ``window > 0``.
        query_groups / gallery_groups: [Q] / [G] long group (video) ids; None = one group.
        window: items with |t_g - t_q| <= window in the same group are excluded (if > 0).
    """

    query_index: Tensor | None = None
    query_times: Tensor | None = None
    gallery_times: Tensor | None = None
    query_groups: Tensor | None = None
    gallery_groups: Tensor | None = None
    window: float = 0.0

    def __post_init__(self) -> None:
        if self.window < 0:
            raise ConfigError(f"exclusion_window={self.window} must be >= 0 (0 disables it)")
        if self.window > 0 and (self.query_times is None or self.gallery_times is None):
            raise ConfigError(
                f"exclusion_window={self.window} needs frame times for queries and gallery; "
                "provide times or set exclusion_window=0"
            )
        if (self.query_groups is None) != (self.gallery_groups is None):
            raise ValueError("give both query_groups and gallery_groups, or neither")

    @property
    def excludes_nothing(self) -> bool:
        """True when every gallery item stays in every query's gallery (no mask is needed)."""
        return self.query_index is None and self.window == 0

    def valid_mask(self, rows: slice, cols: slice, num_cols: int, device: torch.device) -> Tensor:
        """[rows, cols] bool, True where the gallery item stays in the query's gallery.

        ``rows`` / ``cols`` are slices with explicit start and stop into queries / gallery;
        ``num_cols`` is ``cols.stop - cols.start``.
        """
        num_rows = rows.stop - rows.start
        valid = torch.ones(num_rows, num_cols, dtype=torch.bool, device=device)
        gallery_positions = torch.arange(cols.start, cols.stop, device=device)
        if self.query_index is not None:
            valid &= self.query_index[rows, None] != gallery_positions
        if self.window > 0:
            time_gap = self.query_times[rows, None].double() - self.gallery_times[cols].double()
            near = time_gap.abs() <= self.window
            if self.query_groups is not None:
                near &= self.query_groups[rows, None] == self.gallery_groups[cols]
            valid &= ~near
        return valid


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
    _check_embeddings(query, gallery, chunk_size)
    _check_labels(query_labels, query, "query_labels")
    _check_labels(gallery_labels, gallery, "gallery_labels")
    exclusion = GalleryExclusion(
        query_index, query_times, gallery_times, query_groups, gallery_groups, exclusion_window
    )
    query, gallery = _unit_rows(query), _unit_rows(gallery)
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
    """Exact cosine top-k with the exclusions of :func:`evaluate_embeddings`.

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
    _check_embeddings(query, gallery, chunk_size)
    if k < 1 or gallery_chunk_size < 1:
        raise ConfigError(f"topk_search: k={k} and gallery_chunk_size must be >= 1")
    exclusion = GalleryExclusion(
        query_index, query_times, gallery_times, query_groups, gallery_groups, exclusion_window
    )
    query, gallery = _unit_rows(query), (gallery if unit_gallery else _unit_rows(gallery))
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
        best_scores, best_indices = _merge_topk(
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
        return _merge_topk(values, columns, k)
    above = scores > kth_value
    tied = scores == kth_value
    tied_slots = k - above.sum(1, keepdim=True)
    chosen = above | (tied & (tied.cumsum(1) <= tied_slots))
    # Exactly k chosen per row; nonzero lists them row by row in column order.
    columns = chosen.nonzero()[:, 1].reshape(scores.shape[0], k)
    return _merge_topk(scores.gather(1, columns), columns, k)


def _merge_topk(scores: Tensor, indices: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Best k of candidate (scores, unique indices) [C, M], ordered by score then index."""
    by_index = indices.argsort(dim=1)
    scores, indices = scores.gather(1, by_index), indices.gather(1, by_index)
    by_score = scores.sort(dim=1, descending=True, stable=True).indices[:, :k]
    return scores.gather(1, by_score), indices.gather(1, by_score)


def _unit_rows(embeddings: Tensor) -> Tensor:
    """L2-normalised rows; half precision is upcast so cosine ties are not quantisation."""
    if embeddings.dtype not in (torch.float32, torch.float64):
        embeddings = embeddings.float()
    return F.normalize(embeddings, dim=1)


def _no_pairs(query: Tensor, num_gallery: int) -> Tensor:
    return torch.zeros(0, num_gallery, dtype=torch.bool, device=query.device)


def _no_indices(query: Tensor, k: int) -> Tensor:
    return torch.zeros(0, k, dtype=torch.long, device=query.device)


def _check_embeddings(query: Tensor, gallery: Tensor, chunk_size: int) -> None:
    if query.dim() != 2 or gallery.dim() != 2 or query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query {tuple(query.shape)} and gallery {tuple(gallery.shape)} must be [Q, D], [G, D]"
        )
    if chunk_size < 1:
        raise ConfigError(f"chunk_size={chunk_size} must be >= 1")


def _check_labels(labels: Tensor, embeddings: Tensor, name: str) -> None:
    if labels.shape != embeddings.shape[:1]:
        raise ValueError(f"{name} has shape {tuple(labels.shape)}, expected ({len(embeddings)},)")
