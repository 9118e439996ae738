"""Stable descending order of each row of a score matrix: the sort behind every ranking metric.

On the CPU, ``torch.sort(..., stable=True)`` of float rows is the slowest part of evaluation
(about 60 % of it). NumPy sorts integer rows with SIMD kernels several times faster, so on the
CPU each float32 score and its gallery index are packed into one int64 key whose plain integer
order *is* the stable descending order of the scores:

* high 32 bits: the negated score's IEEE bits mapped to a signed integer of the same order
  (negative floats have their magnitude bits flipped), after ``+ 0.0`` turns ``-0.0`` into
  ``+0.0`` so the two zeros tie, as they compare equal;
* low 32 bits: the gallery index, so equal scores keep index order (what ``stable=True`` does).
  :func:`ranked_relevance` stores index · 2 + relevant there instead: the same order, and the
  sorted relevance is the keys' lowest bit, with no gather through the order.

Keys are unique, so any sort (stable or not) gives the same result. float16 / bfloat16 scores are
widened to float32 first (exactly). float64 scores and other devices use ``torch.sort``: 64-bit
scores do not fit beside an index, and GPU sorts are fast already.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

_PACKABLE = (torch.float32, torch.float16, torch.bfloat16)
_MAX_PACKED_COLUMNS = 1 << 31  # the index lives in the low, non-negative 32 bits


def stable_descending_order(scores: Tensor) -> tuple[Tensor, Tensor]:
    """Each row's items by descending score, ties by ascending index.

    Args:
        scores: [R, C] float scores without NaN (NaN has no defined place).

    Returns:
        ``(tie_keys, order)``, both [R, C]: ``order[r, j]`` is the column of row r's j-th
        highest score (long); ``tie_keys[r, j]`` stands for that score: equal keys in a row
        mean equal scores (the sorted float scores, or contiguous int32 keys on the packed
        path). Only compare ``tie_keys`` for equality, within this result.
    """
    scores = scores.detach()  # a ranking has no gradient; NumPy refuses tensors that need one
    if _packable(scores):
        return _packed_order(scores.float())
    sorted_scores, order = torch.sort(scores, dim=1, descending=True, stable=True)
    return sorted_scores, order


def _packable(scores: Tensor) -> bool:
    return (
        scores.device.type == "cpu"
        and scores.numel() > 0
        and scores.dtype in _PACKABLE
        and scores.shape[1] < _MAX_PACKED_COLUMNS
        and sys.byteorder == "little"  # the two int32 halves of an int64 below
    )


def ranked_relevance(scores: Tensor, relevant: Tensor) -> tuple[Tensor, Tensor]:
    """Each row's relevance flags in stable descending score order (ties by ascending index).

    Args:
        scores: [R, C] float scores without NaN.
        relevant: [R, C] bool, whether each item is relevant to its row's query.

    Returns:
        ``(tie_keys, ranked)``, both [R, C]: ``ranked[r, j]`` is the relevance of row r's j-th
        highest score; ``tie_keys`` as in :func:`stable_descending_order`. On the packed path the
        relevance bit rides in the key's lowest bit (index · 2 + relevant), so it comes out of
        the sort without a gather through the order.
    """
    scores = scores.detach()
    if _packable(scores) and scores.shape[1] < _MAX_PACKED_COLUMNS // 2:
        keys = _sorted_keys(scores.float(), _flagged_indices(relevant))
        return keys >> 32, (keys & 1).bool()
    tie_keys, order = stable_descending_order(scores)
    return tie_keys, relevant.gather(1, order)


def _flagged_indices(relevant: Tensor) -> Tensor:
    """[R, C] int32 low key words: column index · 2, plus 1 where relevant."""
    return torch.arange(0, 2 * relevant.shape[1], 2, dtype=torch.int32) + relevant


def _packed_order(scores: Tensor) -> tuple[Tensor, Tensor]:
    keys = _sorted_keys(scores, torch.arange(scores.shape[1], dtype=torch.int32))
    halves = keys.view(torch.int32).view(*scores.shape, 2)  # little-endian: [low, high]
    return halves[..., 1].contiguous(), halves[..., 0].long()


def _sorted_keys(scores: Tensor, low_words: Tensor) -> Tensor:
    """[R, C] int64 keys (descending-score order bits << 32 | ``low_words``), each row sorted.

    ``low_words``: [C] or [R, C] int32, non-negative, unique within a row (they break ties).
    """
    num_rows, num_cols = scores.shape
    bits = torch.neg(scores).add_(0.0).view(torch.int32)  # ascending = descending score
    # As integers, negative floats run backwards; flipping their magnitude bits fixes that.
    ordered = (bits >> 31).bitwise_and_(0x7FFFFFFF).bitwise_xor_(bits)
    keys = torch.empty(num_rows, num_cols, dtype=torch.int64)
    halves = keys.view(torch.int32).view(num_rows, num_cols, 2)  # little-endian: [low, high]
    halves[..., 1] = ordered
    halves[..., 0] = low_words
    _sort_rows_in_place(keys.numpy())
    return keys


def _sort_rows_in_place(keys: np.ndarray, min_rows_per_thread: int = 64) -> None:
    """Sort the rows of ``keys`` in place on several threads.

    ``keys.sort(axis=1)`` on up to ``torch.get_num_threads()`` threads (NumPy sorts release
    the GIL but use one core each; torch's own ops use all of them).
    """
    threads = max(1, min(torch.get_num_threads(), len(keys) // min_rows_per_thread))
    if threads == 1:
        keys.sort(axis=1)
        return
    bounds = np.linspace(0, len(keys), threads + 1).astype(int)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda a, b: keys[a:b].sort(axis=1), bounds[:-1], bounds[1:]))
