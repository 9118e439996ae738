"""What fastap_loss costs: no [pairs, bins] tensor, the gaussian window's width, anchor blocks
on worker threads equal to one block."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fastap_lab.losses.fastap import fastap_loss
from fastap_lab.losses.positives import (
    positives_from_labels,
)
from tests.unit.fastap_reference import random_case, value_and_grad


class LargestTensorSeen(TorchDispatchMode):
    """Records the largest number of elements of any tensor an op returns (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for item in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(item, torch.Tensor):
                self.largest = max(self.largest, item.numel())
        return out


def test_triangular_never_allocates_a_pairs_by_bins_tensor():
    n, bins = 2048, 100
    embeddings = torch.randn(n, 16, requires_grad=True)
    positives = positives_from_labels(torch.arange(n) // 8)
    with LargestTensorSeen() as seen:
        fastap_loss(embeddings, positives, bins=bins).backward()
    # A dense implementation returns N²·(bins + 1) elements; ours at most the [N, N, 2] weights.
    assert n * n <= seen.largest <= 2 * n * n


@pytest.mark.parametrize(
    ("bins", "sigma", "window"), [(100, 0.05, 19), (10, 0.3, 11), (100, 0.001, 5)]
)
def test_gaussian_touches_only_the_centres_within_six_sigmas(bins, sigma, window):
    # The window holds 2·(ceil(6σ / Δ) + 1) + 1 centres (all bins + 1 when that is more), so
    # the largest tensor is the [N, N, window] weights: cost O(N²·window), not O(N²·bins).
    n = 64
    embeddings = torch.randn(n, 8, generator=torch.Generator().manual_seed(5)).requires_grad_(True)
    positives = positives_from_labels(torch.arange(n) // 4)
    with LargestTensorSeen() as seen:
        fastap_loss(embeddings, positives, bins=bins, kernel="gaussian", sigma=sigma).backward()
    assert seen.largest == n * n * window


@pytest.mark.parametrize("threads", [1, 2])
def test_anchor_blocks_on_worker_threads_equal_one_block(monkeypatch, threads):
    # 5-row blocks (the last one short) spread over worker threads, with an anchor subset.
    from fastap_lab import threads as thread_pool
    from fastap_lab.losses import fastap

    embeddings, labels = random_case(48, 6, num_labels=5, seed=21)
    positives = positives_from_labels(labels)
    anchors = torch.tensor([0, 5, 7, 11, 12, 19, 30, 31, 40, 47, 3, 2])
    one_block = [
        value_and_grad(lambda x, a=a: fastap_loss(x, positives, bins=10, anchors=a), embeddings)
        for a in (None, anchors)
    ]
    monkeypatch.setattr(fastap, "CPU_BLOCK_ENTRIES", 5 * 48)
    monkeypatch.setattr(thread_pool, "idle_cores", lambda: threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        blocked = [
            value_and_grad(lambda x, a=a: fastap_loss(x, positives, bins=10, anchors=a), embeddings)
            for a in (None, anchors)
        ]
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(blocked, one_block, atol=1e-15, rtol=1e-13)
    with torch.no_grad():  # no gradient wanted: blocks return values only
        torch.testing.assert_close(fastap_loss(embeddings, positives, bins=10), blocked[0][0])
