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
from fastap_lab.retrieval.ordering import ranked_relevance
from fastap_lab.threads import map_blocks

# Rows are processed in blocks of about this many score entries. Each block is sorted and
# reduced on its own (~50 bytes of temporaries per entry), so a block stays in a core's cache
# and memory is bounded by threads x block, whatever Q and G. Accelerators take blocks this
# many times larger: their per-kernel launch cost, not cache, is what matters there.
_BLOCK_ENTRIES = 1 << 18
_ACCELERATOR_BLOCK_SCALE = 64


def metric_names(ks: Sequence[int]) -> list[str]:
    """The per-query metric keys returned by :func:`ranking_metrics` for these ``ks``."""
    names = ["ap"]
    names += [f"precision@{k}" for k in ks]
    names += [f"recall@{k}" for k in ks]
    return [*names, "r_precision", "map@r"]


def cutoffs_within_gallery(ks: Sequence[int], gallery_size: int) -> tuple[list[int], str | None]:
    """The cut-offs K that fit in the gallery, and a note on those dropped.

    The cut-offs of precision@K / recall@K for an all-vs-all evaluation whose galleries hold
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
    """A warning when every item has the same label, else None.

    A warning when every item of an evaluation set has the same label (int64 [N]): then
    every gallery item is relevant to every query, so AP and R-precision are 1 (and P@K the
    share of valid items in the top K) whatever the ranking: the metrics say nothing about the
    embedding. None when there are two labels or more.
    """
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
    block_entries = _BLOCK_ENTRIES * (
        1 if scores.device.type == "cpu" else _ACCELERATOR_BLOCK_SCALE
    )
    rows_per_block = max(1, block_entries // max(1, scores.shape[1]))
    blocks = [slice(s, s + rows_per_block) for s in range(0, scores.shape[0], rows_per_block)]

    def table_of(block: slice) -> Tensor:
        block_valid = None if valid is None else valid[block].bool()
        return _block_table(scores[block], relevant[block].bool(), block_valid, ks)

    tables = [scores.new_zeros(0, len(metric_names(ks)) + 1, dtype=torch.float64)]
    tables += map_blocks(table_of, blocks, scores.device)
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
    """Metrics table of one block of rows.

    Metrics of one block of rows as [C, metrics + 1] float64, columns ordered as
    ``metric_names(ks)`` then num_relevant: one sort, then dense cumulative sums.

    Excluded items get score -inf so that the valid items fill the front of each sorted row
    (relevant excluded items are made irrelevant first).
    """
    if scores.numel() and torch.isnan(scores.amax()):  # max propagates NaN: one reduction
        raise ValueError("scores contain NaN; rankings of NaN scores are undefined")
    if valid is not None:
        relevant = relevant & valid
        if scores.numel() and torch.isneginf(torch.where(relevant, scores, 0).amin()):
            raise ValueError("a valid relevant item has score -inf; mark it valid=False instead")
        scores = torch.where(valid, scores, float("-inf"))
    if scores.shape[1] == 0:
        no_relevant = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
        return _normalised_table(
            scores.new_zeros(len(scores), len(ks) + 3).double(), no_relevant, ks
        )
    tie_keys, ranked = ranked_relevance(scores, relevant)
    return _table_of_ranking(tie_keys, ranked, ks)


def _table_of_ranking(tie_keys: Tensor, ranked: Tensor, ks: tuple[int, ...]) -> Tensor:
    """Metrics table of a ranked relevance matrix.

    Metrics table (see :func:`_block_table`) of sorted relevance ``ranked`` [C, G] (G >= 1)
    with its ``tie_keys`` [C, G]; every metric is read off two cumulative sums.

    hits[:, j] = relevant items among the first j + 1; precision[:, j] = hits / (j + 1) at
    relevant positions, 0 elsewhere. AP sums precision over all positions (then corrected
    for ties), MAP@R over the first R, R-precision and P@K read hits at R and K.
    """
    num_cols = ranked.shape[1]
    hits = ranked.cumsum(1, dtype=torch.int32 if num_cols < 2**31 else torch.int64)
    num_relevant = hits[:, -1].long()
    rank = torch.arange(1, num_cols + 1, dtype=torch.float64, device=ranked.device)
    precision = (hits * ranked).double().div_(rank)
    last_of_top_r = (num_relevant - 1).clamp_min(0)[:, None]
    # MAP@R only sums the first R positions: the running sum stops at the largest R.
    top_r_precision = precision[:, : max(1, int(num_relevant.max()))].cumsum(1)
    totals = torch.stack(
        [
            _tie_aware_precision_sum(tie_keys, ranked, hits, precision),
            *[hits[:, min(k, num_cols) - 1].double() for k in ks],
            hits.gather(1, last_of_top_r)[:, 0].double(),
            top_r_precision.gather(1, last_of_top_r)[:, 0],
        ],
        dim=1,
    )
    return _normalised_table(totals, num_relevant, ks)


def _normalised_table(totals: Tensor, num_relevant: Tensor, ks: tuple[int, ...]) -> Tensor:
    """Per-query sums turned into the metrics table.

    Per-query sums [C, 1 + len(ks) + 2] -> metrics table [C, metrics + 1] (NaN rows for
    queries without relevant items; num_relevant appended as the last column).
    """
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


def _tie_aware_precision_sum(
    tie_keys: Tensor, ranked: Tensor, hits: Tensor, precision: Tensor
) -> Tensor:
    """Sum over relevant items of the precision at the end of their tie group, float64 [C].

    sklearn evaluates precision once per distinct score, so all items of a tie group share
    the precision reached after the whole group. ``precision`` (at each item, ties broken by
    index) is already right outside tie groups; each group of >= 2 items then trades its
    items' own precisions for (relevant items in it) x precision at its end. Groups are runs
    of tied neighbour pairs, found by one dense comparison; the rest is segment sums over
    the pairs (float32 cosines tie about once per row at G = 4000, so pairs are few).
    """
    precision_sum = precision.sum(1)
    num_cols = tie_keys.shape[1]
    rows, firsts = (tie_keys[:, 1:] == tie_keys[:, :-1]).nonzero(as_tuple=True)
    if not len(rows):
        return precision_sum
    # Pair (row, j) ties items j and j + 1; consecutive pairs of a row chain into one group.
    flat = rows * num_cols + firsts
    opens_group = torch.ones_like(flat, dtype=torch.bool)
    opens_group[1:] = flat[1:] != flat[:-1] + 1
    closes_group = opens_group.roll(-1)
    group_of_pair = opens_group.cumsum(0) - 1
    group_rows, starts = rows[opens_group], firsts[opens_group]
    ends = firsts[closes_group] + 1
    hits_at_end = hits[group_rows, ends].double()
    hits_before = (hits[group_rows, starts] - ranked[group_rows, starts].int()).double()
    group_terms = (hits_at_end - hits_before) * hits_at_end / (ends + 1)
    own_terms = precision[group_rows, starts].index_add(
        0, group_of_pair, precision[rows, firsts + 1]
    )
    return precision_sum.index_add_(0, group_rows, group_terms - own_terms)


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
