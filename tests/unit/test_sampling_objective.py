"""M-per-class batches and the positive masks of the FastAP objective."""

from __future__ import annotations

import pytest
import torch

from fastap_lab.data.sampling import MPerClassBatchSampler
from fastap_lab.errors import ConfigError
from fastap_lab.losses.objectives import FastAPObjective


def test_every_batch_holds_m_of_each_class():
    labels = torch.tensor([0] * 30 + [1] * 50 + [2] * 3)
    sampler = MPerClassBatchSampler(labels, m=4, batch_size=8, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 83 // 8
    for batch in batches:
        counts = torch.bincount(labels[batch], minlength=3)
        assert sorted(counts[counts > 0].tolist()) == [4, 4]


def test_epochs_differ_and_ranks_split_the_stream():
    labels = torch.arange(64) % 4
    one = MPerClassBatchSampler(labels, m=2, batch_size=8, seed=0)
    first = list(one)
    one.set_epoch(1)
    assert list(one) != first
    ranks = [
        list(MPerClassBatchSampler(labels, m=2, batch_size=8, seed=0, rank=r, world_size=2))
        for r in (0, 1)
    ]
    assert len(ranks[0]) == len(ranks[1]) == 4 and ranks[0] != ranks[1]


@pytest.mark.parametrize(("m", "batch"), [(1, 8), (4, 6), (4, 4)])
def test_bad_sampler_settings(m, batch):
    with pytest.raises(ConfigError, match="data."):
        MPerClassBatchSampler(torch.arange(40) % 2, m=m, batch_size=batch)


def _brute(n, same):
    return torch.tensor([[i != j and same(i, j) for j in range(n)] for i in range(n)])


def test_positive_masks_match_brute_force():
    torch.manual_seed(0)
    n = 12
    index = torch.arange(6).repeat(2)
    labels = torch.randint(0, 3, (n,))
    times = torch.rand(n) * 5
    groups = torch.randint(0, 2, (n,))
    views = FastAPObjective(positives="views").positive_mask(index, labels, times, groups)
    assert torch.equal(views, _brute(n, lambda i, j: index[i] == index[j]))
    by_label = FastAPObjective(positives="labels").positive_mask(index, labels, times, groups)
    assert torch.equal(by_label, _brute(n, lambda i, j: labels[i] == labels[j]))
    temporal = FastAPObjective(positives="temporal", window=1.0).positive_mask(
        index, labels, times, groups
    )
    near = lambda i, j: abs(times[i] - times[j]) <= 1.0 and groups[i] == groups[j]  # noqa: E731
    assert torch.equal(temporal, _brute(n, near))


def test_views_mode_uses_two_views():
    assert FastAPObjective(positives="views").num_views == 2
    assert FastAPObjective(positives="labels").num_views == 1
