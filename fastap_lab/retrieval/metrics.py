"""Exact per-query retrieval metrics (AP, P@K, R@K, R-precision, MAP@R) from a score matrix.

Conventions shared by every metric here:

* A query's gallery is the row of ``scores``; ``valid[q, g] = False`` removes item ``g`` from
  query ``q``'s gallery (self-match, temporal neighbours): it is neither ranked nor counted.
* Scores may be any real number (negative cosine similarities included). Higher ranks first.
* **AP** treats tied scores as sklearn does: items of equal score form one tie group, and
  precision is evaluated at the end of the group, so AP equals
  ``sklearn.metrics.average_precision_score`` on the valid items, whatever the ties.
* **P@K, R@K, R-precision, MAP@R** need a single ordering: ties are broken by gallery index
  (lower index ranks first, i.e. a stable descending sort).
* ``k`` larger than the number of valid items does not fail: the top-k is then all valid
  items, and P@K still divides by ``k`` (callers that want clipped ``k`` clip it themselves).
* A query without any valid relevant item gets NaN in every metric; :func:`summarize`
  leaves such queries out of the means and reports how many there were.
* Results are float64 so that means over many queries stay exact to ~1e-15.

torchmetrics is deliberately not used: from 1.8 its retrieval metrics treat scores <= 0 as
irrelevant, which is wrong for cosine similarities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from fastap_lab.errors import ConfigError

# Rows are processed in blocks of about this many score entries; bounds the ~40 bytes of
# temporaries per entry (sort indices, cumulative counts, tie-group ends) to well under 1 GB.
_BLOCK_ENTRIES = 1 << 24


def metric_names(ks: Sequence[int]) -> list[str]:
    """The per-query metric keys returned by :func:`ranking_metrics` for these ``ks``."""
    names = ["ap"]
    names += [f"precision@{k}" for k in ks]
    names += [f"recall@{k}" for k in ks]
    return [*names, "r_precision", "map@r"]


def ranking_metrics(
    scores: Tensor,
    relevant: Tensor,
    ks: Sequence[int] = (1, 5, 10),
    valid: Tensor | None = None,
) -> dict[str, Tensor]:
    """Per-query retrieval metrics of a dense score matrix (see the module docstring).

    Args:
        scores: [Q, G] float similarity of query q to gallery item g (any device / float dtype).
        relevant: [Q, G] bool, True where gallery item g is relevant to query q.
        ks: cut-offs for ``precision@k`` / ``recall@k``; each a positive int.
        valid: [Q, G] bool or None (all valid); False removes the item from q's gallery.

    Returns:
        dict of float64 [Q] tensors on ``scores.device``: ``"ap"``, ``"precision@{k}"``,
        ``"recall@{k}"``, ``"r_precision"``, ``"map@r"`` (NaN for queries without a valid
        relevant item) and ``"num_relevant"`` (number of valid relevant items).
    """
    ks = _check_ks(ks)
    _check_shapes(scores, relevant, valid)
    rows_per_block = max(1, _BLOCK_ENTRIES // max(1, scores.shape[1]))
    blocks = [
        _block_metrics(
            scores[start : start + rows_per_block],
            relevant[start : start + rows_per_block].bool(),
            None if valid is None else valid[start : start + rows_per_block].bool(),
            ks,
        )
        for start in range(0, scores.shape[0], rows_per_block)
    ]
    if not blocks:  # Q == 0
        empty = scores.new_zeros(0, dtype=torch.float64)
        return {name: empty for name in [*metric_names(ks), "num_relevant"]}
    return {name: torch.cat([block[name] for block in blocks]) for name in blocks[0]}


def summarize(per_query: dict[str, Tensor]) -> dict[str, float]:
    """Means over queries that have at least one relevant item (NaN rows skipped).

    Args:
        per_query: output of :func:`ranking_metrics` (or ``evaluate_embeddings``).

    Returns:
        ``{"mAP": mean ap, "<metric>": mean, ..., "num_queries": Q,
        "num_queries_without_relevant": count}``; means are NaN when no query has a
        relevant item.
    """
    has_relevant = ~torch.isnan(per_query["ap"])
    summary: dict[str, float] = {}
    for name, values in per_query.items():
        if name == "num_relevant":
            continue
        kept = values[has_relevant].double()
        mean = kept.mean().item() if kept.numel() else float("nan")
        summary["mAP" if name == "ap" else name] = mean
    summary["num_queries"] = int(has_relevant.numel())
    summary["num_queries_without_relevant"] = int((~has_relevant).sum().item())
    return summary


def _block_metrics(
    scores: Tensor, relevant: Tensor, valid: Tensor | None, ks: Sequence[int]
) -> dict[str, Tensor]:
    """:func:`ranking_metrics` for one block of rows: one dense sort, then work per relevant item.

    Excluded items are given score -inf so that the valid items fill the front of each sorted
    row (their 1-based rank is then position + 1, ties kept in gallery-index order).
    """
    if valid is not None:
        scores = scores.masked_fill(~valid, float("-inf"))
        relevant = relevant & valid
    sorted_scores, order = torch.sort(scores, dim=1, descending=True, stable=True)
    _check_sorted(sorted_scores, valid)
    hits = _RelevantHits.from_sorted(relevant.gather(1, order), sorted_scores)
    del order
    num_relevant = hits.per_query(torch.ones_like(hits.rank, dtype=torch.float64))
    no_relevant = num_relevant == 0
    safe_num_relevant = num_relevant.clamp_min(1)

    precision_at_group_end = hits.hits_at_group_end / hits.rank_at_group_end
    results = {"ap": hits.per_query(precision_at_group_end) / safe_num_relevant}
    for k in ks:
        hits_in_top_k = hits.per_query((hits.rank <= k).double())
        results[f"precision@{k}"] = hits_in_top_k / k
        results[f"recall@{k}"] = hits_in_top_k / safe_num_relevant
    within_r = (hits.rank <= num_relevant[hits.rows]).double()
    results["r_precision"] = hits.per_query(within_r) / safe_num_relevant
    precision_at_hit = hits.ordinal.double() / hits.rank
    results["map@r"] = hits.per_query(precision_at_hit * within_r) / safe_num_relevant
    for name, values in results.items():
        results[name] = values.masked_fill(no_relevant, float("nan"))
    results["num_relevant"] = num_relevant
    return results


@dataclass
class _RelevantHits:
    """The relevant items of a block of sorted rows, flattened row-major ([M] each).

    ``ordinal`` counts relevant items up to and including this one (index tie-break);
    ``rank`` is the 1-based position; ``group_end`` the 0-based last position of its tie group.
    """

    rows: Tensor
    cols: Tensor
    ordinal: Tensor
    rank: Tensor
    group_end: Tensor
    num_rows: int
    num_cols: int

    @classmethod
    def from_sorted(cls, relevant_sorted: Tensor, sorted_scores: Tensor) -> _RelevantHits:
        rows, cols = relevant_sorted.nonzero(as_tuple=True)
        num_rows = relevant_sorted.shape[0]
        per_row = torch.bincount(rows, minlength=num_rows)
        first_of_row = per_row.cumsum(0) - per_row
        ordinal = torch.arange(1, len(rows) + 1, device=rows.device) - first_of_row[rows]
        group_end = _tie_group_ends(sorted_scores, rows, cols)
        return cls(rows, cols, ordinal, cols + 1, group_end, num_rows, relevant_sorted.shape[1])

    def per_query(self, values: Tensor) -> Tensor:
        """Sum of float64 [M] values per row -> [rows]."""
        totals = torch.zeros(self.num_rows, dtype=torch.float64, device=values.device)
        return totals.index_add_(0, self.rows, values)

    @property
    def rank_at_group_end(self) -> Tensor:
        return (self.group_end + 1).double()

    @property
    def hits_at_group_end(self) -> Tensor:
        """Relevant items ranked at or before the end of each item's tie group, float64 [M]."""
        # Row-major flat positions are ascending, so a binary search counts relevant items
        # up to (row, group_end); subtracting the row's start gives the in-row count.
        flat_position = self.rows * self.num_cols + self.cols
        flat_group_end = self.rows * self.num_cols + self.group_end
        up_to_group_end = torch.searchsorted(flat_position, flat_group_end, right=True)
        row_start = torch.arange(len(self.rows), device=self.rows.device) - self.ordinal + 1
        return (up_to_group_end - row_start).double()


def _tie_group_ends(sorted_scores: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Last position of the tie group of each (row, col) of descending ``sorted_scores``, [M].

    Ties are rare for real-valued scores, so the dense reversed running minimum over group
    ends is only computed for rows where some listed item ties with its successor.
    """
    num_cols = sorted_scores.shape[1]
    next_cols = (cols + 1).clamp_max(max(num_cols - 1, 0))
    tied_with_next = (cols + 1 < num_cols) & (
        sorted_scores[rows, next_cols] == sorted_scores[rows, cols]
    )
    group_end = cols.clone()
    if not tied_with_next.any():
        return group_end
    tied_rows, slot_of_item = torch.unique(rows[tied_with_next], return_inverse=True)
    tied_scores = sorted_scores[tied_rows]
    is_group_end = torch.ones_like(tied_scores, dtype=torch.bool)
    is_group_end[:, :-1] = tied_scores[:, :-1] != tied_scores[:, 1:]
    positions = torch.arange(num_cols, device=sorted_scores.device)
    ends = torch.where(is_group_end, positions, num_cols - 1)
    ends = ends.flip(1).cummin(1).values.flip(1)  # first group end at or after each position
    group_end[tied_with_next] = ends[slot_of_item, cols[tied_with_next]]
    return group_end


def _check_sorted(sorted_scores: Tensor, valid: Tensor | None) -> None:
    """Reject NaN scores (undefined ranking) and valid -inf scores (they would mix with the
    excluded items); both checks read only O(rows) entries of the sorted block."""
    if sorted_scores.numel() == 0:
        return
    if torch.isnan(sorted_scores[:, 0]).any():  # NaN sorts first in a descending sort
        raise ValueError("scores contain NaN; rankings of NaN scores are undefined")
    if valid is None:
        return
    num_valid = valid.sum(1)
    last_valid_score = sorted_scores.gather(1, (num_valid - 1).clamp_min(0)[:, None])[:, 0]
    if (torch.isneginf(last_valid_score) & (num_valid > 0)).any():
        raise ValueError("valid scores contain -inf; mark such items valid=False instead")


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    checked = tuple(int(k) for k in ks)
    if any(k < 1 or k != original for k, original in zip(checked, ks, strict=True)):
        raise ConfigError(f"retrieval ks={list(ks)}: every k must be a positive integer")
    return checked


def _check_shapes(scores: Tensor, relevant: Tensor, valid: Tensor | None) -> None:
    if scores.dim() != 2 or not scores.is_floating_point():
        raise ValueError(f"scores must be a float [Q, G] tensor, got {scores.dtype} {scores.shape}")
    for name, mask in (("relevant", relevant), ("valid", valid)):
        if mask is not None and mask.shape != scores.shape:
            raise ValueError(f"{name} has shape {tuple(mask.shape)}, scores {tuple(scores.shape)}")
