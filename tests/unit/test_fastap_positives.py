"""Positive masks of the FastAP loss (losses/positives.py) against brute force."""

import pytest
import torch

from fastap_lab.errors import ConfigError
from fastap_lab.losses.positives import (
    positives_from_labels,
    positives_from_times,
    positives_from_views,
)


def test_positive_mask_builders_match_brute_force():
    generator = torch.Generator().manual_seed(4)
    labels = torch.randint(0, 4, (15,), generator=generator)
    by_labels = [[i != j and labels[i] == labels[j] for j in range(15)] for i in range(15)]
    assert positives_from_labels(labels).tolist() == by_labels

    frames, views = 5, 3
    row_frame = [(n % frames) for n in range(frames * views)]
    n = frames * views
    by_views = [[i != j and row_frame[i] == row_frame[j] for j in range(n)] for i in range(n)]
    assert positives_from_views(frames, views).tolist() == by_views

    times = torch.rand(20, generator=generator) * 3
    groups = torch.randint(0, 2, (20,), generator=generator)
    by_times = [
        [i != j and abs(times[i] - times[j]) <= 0.5 and groups[i] == groups[j] for j in range(20)]
        for i in range(20)
    ]
    assert positives_from_times(times, 0.5, groups).tolist() == by_times
    ungrouped = [[i != j and abs(times[i] - times[j]) <= 0.5 for j in range(20)] for i in range(20)]
    assert positives_from_times(times, 0.5).tolist() == ungrouped


@pytest.mark.parametrize("window", [0.0, 1.0, 2.0, 2.5])
def test_temporal_positives_include_the_window_exactly(window):
    # Integer times hit the window exactly: |dt| == window is a positive (<=), |dt| == window +
    # 1 is not; window 0 keeps only other frames at the same time.
    times = torch.tensor([0.0, 1.0, 2.0, 3.0, 3.0, 5.0])
    expected = (times[:, None] - times[None]).abs() <= window
    expected &= ~torch.eye(6, dtype=torch.bool)
    mask = positives_from_times(times, window)
    assert mask.tolist() == expected.tolist()
    assert mask[3, 4]  # same time, distinct frames
    if window == 2.0:
        assert mask[0, 2] and mask[3, 5] and not mask[0, 3]


def test_positive_masks_defaults_and_errors():
    assert torch.equal(positives_from_views(4), positives_from_labels(torch.arange(4).repeat(2)))
    with pytest.raises(ConfigError, match=r"window=-1\.0: the time window must be >= 0"):
        positives_from_times(torch.zeros(3), -1.0)
