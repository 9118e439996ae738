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
* NaN scores raise ValueError; -inf is allowed except on valid relevant items when a
  ``valid`` mask is given (excluded items are ranked internally as -inf).

torchmetrics is deliberately not used: from 1.8 its retrieval metrics treat scores <= 0 as
irrelevant, which is wrong for cosine similarities.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from fastap_lab.errors import ConfigError
from fastap_lab.retrieval.ordering import stable_descending_order

# Rows are processed in blocks of about this many score entries; bounds the ~40 bytes of
# temporaries per entry (sort keys and indices, masks, tie keys) to well under 1 GB.
_BLOCK_ENTRIES = 1 << 24


def metric_names(ks: Sequence[int]) -> list[str]:
    """The per-query metric keys returned by :func:`ranking_metrics` for these ``ks``."""
    names = ["ap"]
    names += [f"precision@{k}" for k in ks]
    names += [f"recall@{k}" for k in ks]
    return [*names, "r_precision", "map@r"]


def cutoffs_within_gallery(ks: Sequence[int], gallery_size: int) -> tuple[list[int], str | None]:
    """The cut-offs of precision@K / recall@K for an all-vs-all evaluation whose galleries hold
    ``gallery_size`` items (the evaluation set minus the query): one policy for the training
    callback (``val/…``) and for evaluation (``inference/…``).

    A K larger than the gallery is **dropped**, not clipped to the gallery size: a metric named
    precision@K always means the top K, and no metric appears that was not asked for.

    Returns:
        (the kept K, sorted and without repeats; a note naming the dropped K, or None).
    """
    kept = sorted({int(k) for k in ks if k <= gallery_size})
    dropped = sorted({int(k) for k in ks if k > gallery_size})
    if not dropped:
        return kept, None
    named = ", ".join(f"k={k}" for k in dropped)
    verb = "is" if len(dropped) == 1 else "are"
    return kept, (
        f"{named} {verb} larger than the gallery ({gallery_size} frames): not computed"
        " (precision@K / recall@K only for K up to the gallery size)"
    )


def single_label_warning(labels: Tensor) -> str | None:
    """A warning when every item of an evaluation set has the same label (int64 [N]): then
    every gallery item is relevant to every query, so AP and R-precision are 1 (and P@K the
    share of valid items in the top K) whatever the ranking: the metrics say nothing about the
    embedding. None when there are two labels or more."""
    values = labels.unique()
    if values.numel() != 1:
        return None
    return (
        f"all {labels.numel()} evaluated frames have label {int(values[0])}: every frame is"
        " relevant to every query, so mAP is 1 and no metric depends on the embedding;"
        " evaluate frames of at least two labels"
    )


def ranking_metrics(
    scores: Tensor,
    relevant: Tensor,
    ks: Sequence[int] = (1, 5, 10),
    valid: Tensor | None = None,
) -> dict[str, Tensor]:
    """Per-query retrieval metrics of a dense score matrix (see the module docstring).

    Args:
        scores: [Q, G] float similarity of query q to gallery item g (any device / float dtype).
            NaN is rejected; -inf is allowed only for items with ``valid=False``.
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
    tables = [scores.new_zeros(0, len(metric_names(ks)) + 1, dtype=torch.float64)]
    for start in range(0, scores.shape[0], rows_per_block):
        block = slice(start, start + rows_per_block)
        block_valid = None if valid is None else valid[block].bool()
        tables.append(_block_table(scores[block], relevant[block].bool(), block_valid, ks))
    columns = torch.cat(tables).T.contiguous()
    return dict(zip([*metric_names(ks), "num_relevant"], columns, strict=True))


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


def _block_table(
    scores: Tensor, relevant: Tensor, valid: Tensor | None, ks: tuple[int, ...]
) -> Tensor:
    """Metrics of one block of rows as [C, metrics + 1] float64, columns ordered as
    ``metric_names(ks)`` then num_relevant: one dense sort, then work per relevant item.

    Excluded items get score -inf so that the valid items fill the front of each sorted row:
    a relevant item's 1-based rank is its sorted position + 1 (ties in gallery-index order).
    ``tie_keys`` (:func:`stable_descending_order`) stand for the sorted scores and are only
    compared for equality.
    Per-item terms are summed per query by a single ``index_add_`` (few large ops, not many
    small ones).
    """
    if scores.numel() and torch.isnan(scores).any():
        raise ValueError("scores contain NaN; rankings of NaN scores are undefined")
    if valid is not None:
        scores = scores.masked_fill(~valid, float("-inf"))
        relevant = relevant & valid
    tie_keys, order = stable_descending_order(scores)
    rows, cols = relevant.gather(1, order).nonzero(as_tuple=True)
    if valid is not None and torch.isneginf(scores[rows, order[rows, cols]]).any():
        raise ValueError("a valid relevant item has score -inf; mark it valid=False instead")
    del order
    flat_position = rows * tie_keys.shape[1] + cols
    num_relevant = torch.bincount(rows, minlength=scores.shape[0])
    rank = cols + 1
    hit_index = torch.arange(len(rows), device=rows.device)
    hits_so_far = hit_index - (num_relevant.cumsum(0) - num_relevant)[rows] + 1  # incl. self
    within_r = rank <= num_relevant[rows]
    item_terms = torch.stack(
        [
            _tie_aware_precision(tie_keys, flat_position, rows, cols, hits_so_far),
            *[rank <= k for k in ks],
            within_r,
            hits_so_far.double() / rank * within_r,
        ],
        dim=1,
    )
    totals = item_terms.new_zeros(scores.shape[0], item_terms.shape[1])
    totals.index_add_(0, rows, item_terms)
    return _normalised_table(totals, num_relevant, ks)


def _normalised_table(totals: Tensor, num_relevant: Tensor, ks: tuple[int, ...]) -> Tensor:
    """Per-query sums [C, 1 + len(ks) + 2] -> metrics table [C, metrics + 1] (NaN rows for
    queries without relevant items; num_relevant appended as the last column)."""
    safe_num_relevant = num_relevant.clamp_min(1).double()[:, None]
    hits_in_top_k = totals[:, 1 : 1 + len(ks)]
    table = torch.cat(
        [
            totals[:, :1] / safe_num_relevant,
            hits_in_top_k / torch.tensor(ks, dtype=torch.float64, device=totals.device),
            hits_in_top_k / safe_num_relevant,
            totals[:, -2:] / safe_num_relevant,
        ],
        dim=1,
    )
    table.masked_fill_((num_relevant == 0)[:, None], float("nan"))
    return torch.cat([table, num_relevant.double()[:, None]], dim=1)


def _tie_aware_precision(
    tie_keys: Tensor, flat_position: Tensor, rows: Tensor, cols: Tensor, hits_so_far: Tensor
) -> Tensor:
    """Precision at the end of each relevant item's tie group, float64 [M].

    sklearn evaluates precision once per distinct score, so all items of a tie group share
    the precision reached after the whole group. Without ties this is precision at the item.
    """
    num_cols = tie_keys.shape[1]
    flat_keys = tie_keys.reshape(-1)
    next_position = (flat_position + 1).clamp_max(max(flat_keys.numel() - 1, 0))
    tied_with_next = (cols < num_cols - 1) & (flat_keys[next_position] == flat_keys[flat_position])
    if not tied_with_next.any():
        return hits_so_far.double() / (cols + 1)
    group_end = _tie_group_ends(tie_keys, rows, cols, tied_with_next)
    # Row-major flat positions ascend, so a binary search counts the relevant items up to
    # (row, group_end); subtracting the index of the row's first relevant item localises it.
    up_to_group_end = torch.searchsorted(flat_position, rows * num_cols + group_end, right=True)
    first_hit_of_row = torch.arange(len(rows), device=rows.device) - hits_so_far + 1
    hits_at_group_end = up_to_group_end - first_hit_of_row
    return hits_at_group_end.double() / (group_end + 1)


def _tie_group_ends(tie_keys: Tensor, rows: Tensor, cols: Tensor, tied: Tensor) -> Tensor:
    """Last position of the tie group of each (row, col) of descending ``tie_keys``, [M].

    Ties are rare for real-valued scores, so the dense reversed running minimum over group
    ends is only computed for rows where some item in ``tied`` ties with its successor.
    """
    num_cols = tie_keys.shape[1]
    tied_rows, slot_of_item = torch.unique(rows[tied], return_inverse=True)
    tied_keys = tie_keys[tied_rows]
    is_group_end = torch.ones_like(tied_keys, dtype=torch.bool)
    is_group_end[:, :-1] = tied_keys[:, :-1] != tied_keys[:, 1:]
    positions = torch.arange(num_cols, device=tie_keys.device)
    ends = torch.where(is_group_end, positions, num_cols - 1)
    ends = ends.flip(1).cummin(1).values.flip(1)  # first group end at or after each position
    group_end = cols.clone()
    group_end[tied] = ends[slot_of_item, cols[tied]]
    return group_end


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
