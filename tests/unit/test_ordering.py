"""stable_descending_order equals torch's stable descending sort, on both of its paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastap_lab.retrieval import ordering
from fastap_lab.retrieval.ordering import stable_descending_order

SPECIALS = [0.0, -0.0, float("inf"), float("-inf"), 1e-40, -1e-40, 3.4e38, -3.4e38]


def scores_with_ties(dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """[30, 257] rows mixing distinct values, heavy ties (2 decimals), signed zeros,
    infinities and float32 subnormals."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(30, 257, generator=generator, dtype=torch.float64)
    scores[::2] = (scores[::2] * 100).round() / 100
    specials = torch.tensor(SPECIALS, dtype=torch.float64)
    picks = torch.randint(0, len(SPECIALS), (30, 40), generator=generator)
    scores[:, torch.randperm(257, generator=generator)[:40]] = specials[picks]
    return scores.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_order_equals_stable_sort_with_ties_zeros_and_infinities(dtype):
    scores = scores_with_ties(dtype)
    expected_values, expected_order = torch.sort(scores, dim=1, descending=True, stable=True)
    tie_keys, order = stable_descending_order(scores)
    assert order.dtype == torch.long and torch.equal(order, expected_order)
    # Equal neighbouring keys exactly where the sorted scores are equal.
    same_keys = tie_keys[:, 1:] == tie_keys[:, :-1]
    assert torch.equal(same_keys, expected_values[:, 1:] == expected_values[:, :-1])
    assert same_keys.any() and tie_keys.is_contiguous()


def test_float32_cpu_takes_the_packed_path_and_float64_the_torch_sort():
    assert ordering._packable(torch.zeros(2, 3))
    assert not ordering._packable(torch.zeros(2, 3, dtype=torch.float64))


def test_empty_and_single_column_rows():
    for shape in [(0, 5), (3, 0), (3, 1)]:
        tie_keys, order = stable_descending_order(torch.zeros(shape))
        assert order.shape == shape and tie_keys.shape == shape


# (torch threads, rows per thread): 50 rows / 20 gives 2 threads (an integer count, not 2.5).
@pytest.mark.parametrize(("threads", "min_rows"), [(1, 1), (3, 1), (3, 20)])
def test_rows_sorted_in_place_on_several_threads(threads, min_rows):
    keys = np.random.default_rng(0).integers(-(2**62), 2**62, size=(50, 33))
    expected = np.sort(keys, axis=1)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ordering._sort_rows_in_place(keys, min_rows_per_thread=min_rows)
    finally:
        torch.set_num_threads(previous)
    np.testing.assert_array_equal(keys, expected)
