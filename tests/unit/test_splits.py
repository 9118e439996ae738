"""Leak-free splits: contiguous blocks, whole videos, a gap around held-out frames."""

from __future__ import annotations

import pytest
import torch

from fastap_lab.data.splits import split_frames
from fastap_lab.errors import ConfigError


def _two_videos(n: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    times = torch.cat([torch.arange(n), torch.arange(n)]).double() * 0.25
    groups = torch.cat([torch.zeros(n), torch.ones(n)]).long()
    return times, groups


def test_blocks_are_disjoint_contiguous_and_respect_gap():
    times, groups = _two_videos()
    train, val = split_frames(
        times, groups, split="blocks", val_fraction=0.2, num_blocks=10, gap=1.0
    )
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert 0.15 < val.numel() / times.numel() < 0.25
    for g in (0, 1):
        val_t = times[val][groups[val] == g]
        train_t = times[train][groups[train] == g]
        nearest = (train_t[:, None] - val_t[None, :]).abs().min(dim=1).values
        assert nearest.min() > 1.0  # brute-force check of the gap
        # held-out frames of a video form whole contiguous runs of 10 frames (the blocks)
        runs = torch.diff(torch.sort(val_t).values).gt(0.25 + 1e-9).sum() + 1
        assert val_t.numel() == 10 * runs


def test_gap_zero_keeps_every_frame():
    times, groups = _two_videos()
    train, val = split_frames(times, groups, split="blocks", gap=0.0)
    assert train.numel() + val.numel() == times.numel()


def test_video_split_holds_out_whole_videos():
    times = torch.arange(60).double()
    groups = torch.arange(60) // 10  # 6 videos
    train, val = split_frames(times, groups, split="video", val_fraction=0.34, gap=5.0)
    assert set(groups[train].tolist()).isdisjoint(groups[val].tolist())
    assert groups[val].unique().numel() == 2
    assert train.numel() == 40  # other videos are never trimmed by the gap


def test_none_uses_all_frames_for_both():
    times, groups = _two_videos(10)
    train, val = split_frames(times, groups, split="none")
    assert torch.equal(train, val) and train.numel() == 20


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"split": "random"}, "data.split"),
        ({"val_fraction": 1.5}, "data.val_fraction"),
        ({"num_blocks": 1}, "data.num_blocks"),
        ({"num_blocks": 500}, "data.num_blocks"),
        ({"split": "video"}, "data.split=video"),
        ({"gap": 1000.0}, "data.split_gap"),
    ],
)
def test_bad_split_settings_name_the_field(kwargs, field):
    times, groups = torch.arange(50).double(), torch.zeros(50, dtype=torch.long)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        split_frames(times, groups, **kwargs)
