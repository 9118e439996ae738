"""loss.positives=surrogate: positives are frames at the same respiratory phase, any cycle."""

from __future__ import annotations

import pytest
import torch

from fastap_lab.errors import ConfigError
from fastap_lab.losses.objectives import FastAPObjective, scale_phase


def test_positives_are_frames_within_the_tolerance_across_cycles():
    objective = FastAPObjective(positives="surrogate", tolerance=0.1)
    # frames 0..5: phase 0.0, 0.1, 0.5, 0.95, 0.05 (a later cycle), 0.3
    objective.set_phase(torch.tensor([0.0, 0.1, 0.5, 0.95, 0.05, 0.3]))
    index = torch.tensor([0, 1, 2, 3, 4])
    unused = torch.zeros(5)
    mask = objective.positive_mask(index, unused.long(), unused, unused.long())
    expected = torch.zeros(5, 5, dtype=torch.bool)
    for a, b in ((0, 1), (0, 4), (1, 4)):  # |0.1 - 0.0| = 0.1 is at the boundary: positive
        expected[a, b] = expected[b, a] = True
    assert torch.equal(mask, expected)
    assert objective.num_views == 1


def test_batch_index_selects_the_phase_of_each_frame():
    objective = FastAPObjective(positives="surrogate", tolerance=0.2)
    objective.set_phase(torch.tensor([0.9, 0.0, 0.8]))
    index = torch.tensor([2, 1, 0])
    zeros = torch.zeros(3)
    mask = objective.positive_mask(index, zeros.long(), zeros, zeros.long())
    assert mask.tolist() == [[False, False, True], [False, False, False], [True, False, False]]


def test_phase_must_be_set_and_tolerance_in_range():
    objective = FastAPObjective(positives="surrogate")
    zeros = torch.zeros(2)
    with pytest.raises(ConfigError, match="no respiratory surrogate"):
        objective.positive_mask(torch.arange(2), zeros.long(), zeros, zeros.long())
    for bad in (0.0, 1.0):
        with pytest.raises(ConfigError, match=f"loss.tolerance={bad}"):
            FastAPObjective(positives="surrogate", tolerance=bad)


def test_scale_phase_maps_the_breathing_range_to_unit_interval():
    generator = torch.Generator().manual_seed(0)
    values = 3.0 * torch.rand(1000, generator=generator, dtype=torch.float64) - 7.0
    scaled = scale_phase(values)
    assert float(scaled.min()) == 0.0 and float(scaled.max()) == 1.0
    order = values.argsort()
    assert bool((scaled[order].diff() >= 0).all())  # monotone: the ordering of frames is kept
    with pytest.raises(ConfigError, match="constant"):
        scale_phase(torch.ones(10))
