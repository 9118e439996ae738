"""Embedding diagnostics against straightforward numpy re-implementations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from fastap_lab.evaluation import diagnostics as dg


def unit_rows(seed: int, n: int = 30, d: int = 8) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


def all_pairs(n):
    return [(i, j) for i, j in itertools.combinations(range(n), 2)]


def test_sample_pairs_lists_every_pair_when_few():
    first, second = dg.sample_pairs(7, max_pairs=100)
    assert sorted(zip(first.tolist(), second.tolist(), strict=True)) == all_pairs(7)


def test_sample_pairs_samples_distinct_ordered_pairs_when_many():
    first, second = dg.sample_pairs(50, max_pairs=300, seed=3)
    assert len(first) == 300 and bool((first < second).all()) and int(second.max()) < 50
    again = dg.sample_pairs(50, max_pairs=300, seed=3)
    assert torch.equal(first, again[0]) and torch.equal(second, again[1])


def test_pair_statistics_match_numpy():
    x = unit_rows(0)
    xn = x.numpy()
    first, second = dg.sample_pairs(len(x), 10**6)
    pairs = all_pairs(len(x))
    cosines = np.array([xn[i] @ xn[j] for i, j in pairs])
    np.testing.assert_allclose(dg.pair_cosines(x, first, second).numpy(), cosines, rtol=1e-12)
    distances = np.array([np.sum((xn[i] - xn[j]) ** 2) for i, j in pairs])
    assert dg.alignment(x, first, second) == pytest.approx(distances.mean(), rel=1e-12)
    assert dg.uniformity(x, first, second) == pytest.approx(
        np.log(np.mean(np.exp(-2 * distances))), rel=1e-12
    )
    assert dg.fraction_above(torch.tensor([0.5, 0.995, 0.999, 0.99])) == pytest.approx(0.5)


def test_dimension_std_and_effective_rank_match_numpy():
    x = unit_rows(1)
    np.testing.assert_allclose(dg.dimension_std(x).numpy(), x.numpy().std(0, ddof=0), rtol=1e-12)
    s = np.linalg.svd(x.numpy(), compute_uv=False)
    p = s / s.sum()
    assert dg.effective_rank(x) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-10)


def test_effective_rank_extremes():
    collapsed = torch.ones(20, 6) / math.sqrt(6)
    assert dg.effective_rank(collapsed) == pytest.approx(1.0, abs=1e-6)
    assert dg.effective_rank(torch.eye(6)) == pytest.approx(6.0, rel=1e-9)


def test_diagnose_splits_pairs_by_label_like_a_loop():
    x = unit_rows(2, n=24)
    labels = torch.tensor([i % 3 for i in range(24)])
    summary, sims = dg.diagnose(x, labels, max_pairs=10**6)
    xn, ln = x.numpy(), labels.numpy()
    positive = [xn[i] @ xn[j] for i, j in all_pairs(24) if ln[i] == ln[j]]
    negative = [xn[i] @ xn[j] for i, j in all_pairs(24) if ln[i] != ln[j]]
    np.testing.assert_allclose(np.sort(sims["positive"].numpy()), np.sort(positive), rtol=1e-12)
    np.testing.assert_allclose(np.sort(sims["negative"].numpy()), np.sort(negative), rtol=1e-12)
    assert summary["num_positive_pairs"] == len(positive) and not summary["pairs_sampled"]
    align = np.mean([np.sum((xn[i] - xn[j]) ** 2) for i, j in all_pairs(24) if ln[i] == ln[j]])
    assert summary["alignment"] == pytest.approx(align, rel=1e-12)
    assert summary["dimension_std"]["mean_times_sqrt_dim"] == pytest.approx(
        xn.std(0).mean() * math.sqrt(8)
    )


def test_collapsed_embeddings_are_flagged_and_plotted(tmp_path):
    base = torch.ones(40, 16) + 1e-3 * torch.randn(
        40, 16, generator=torch.Generator().manual_seed(0)
    )
    x = base / base.norm(dim=1, keepdim=True)
    summary, sims = dg.diagnose(x, None)
    assert summary["fraction_pairs_above_0.99"] == 1.0 and "alignment" not in summary
    dg.plot_diagnostics(tmp_path / "d.png", summary, sims, dg.dimension_std(x))
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
