"""Leak-free train / held-out splits of a frame sequence.

Adjacent video frames are near-duplicates, so a random split would put copies of the same
moment on both sides. Splits here are by contiguous time blocks (or by whole videos), and
training frames within ``gap`` time units of a held-out frame of the same video are dropped.
"""

from __future__ import annotations

import torch

from fastap_lab.errors import ConfigError

SPLITS = ("blocks", "video", "none")


def split_frames(
    times: torch.Tensor,
    groups: torch.Tensor,
    *,
    split: str = "blocks",
    val_fraction: float = 0.2,
    num_blocks: int = 10,
    gap: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split frames into (train, val) index tensors.

    Args:
        times: float [N], time of each frame (seconds or frame steps).
        groups: int64 [N], video / sequence id of each frame.
        split: ``blocks`` (each video cut into ``num_blocks`` contiguous blocks, evenly spaced
            blocks held out), ``video`` (whole videos held out) or ``none`` (train = val = all).
        val_fraction: share of blocks / videos held out.
        num_blocks: contiguous blocks per video (``split=blocks``).
        gap: training frames closer than this (``time`` units) to a held-out frame of the same
            video are dropped, so no near-duplicate straddles the split.

    Returns:
        ``(train_index, val_index)``, int64 sorted tensors.
    """
    n = times.shape[0]
    check_split_settings(split, val_fraction)
    if split == "none":
        everything = torch.arange(n)
        return everything, everything
    if split == "video":
        held_out = _held_out_videos(groups, val_fraction)
    else:
        held_out = _held_out_blocks(times, groups, val_fraction, num_blocks)
    train = _drop_near(~held_out, held_out, times, groups, gap)
    train_index, val_index = train.nonzero().flatten(), held_out.nonzero().flatten()
    if train_index.numel() == 0:
        raise ConfigError(_no_training_frames(times, split, gap, val_fraction))
    return train_index, val_index


def check_split_settings(split: str, val_fraction: float) -> None:
    """Raise ConfigError for an unknown split or a held-out share outside (0, 1).

    Raise ConfigError unless ``split`` is known and, when frames are held out, the held-out
    share is strictly between 0 (nothing to validate on) and 1 (nothing to train on).
    """
    if split not in SPLITS:
        raise ConfigError(f"data.split={split!r}: unknown; choose one of {list(SPLITS)}")
    if split != "none" and not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={val_fraction}: must be in (0, 1), e.g. 0.2")


def _no_training_frames(times: torch.Tensor, split: str, gap: float, val_fraction: float) -> str:
    """Why the split left no training frame.

    Why the split left no training frame; equal times are named (every frame is then
    within the gap of a held-out one).
    """
    if gap > 0 and times.numel() > 1 and bool((times == times[0]).all()):
        return (
            f"data.split={split}: the `time` values are all equal ({float(times[0]):g}), so every"
            f" training frame is within data.split_gap={gap} of a held-out frame and none is"
            " left; give each frame its own time in labels.csv (or drop the time column: the"
            " row order is used), or set data.split_gap=0 or data.split=none"
        )
    return (
        f"data.split={split}: no training frames left (gap={gap}, val_fraction={val_fraction});"
        " lower data.split_gap or data.val_fraction, or use data.split=none"
    )


def _evenly_spaced(count: int, chosen: int) -> list[int]:
    """``chosen`` of ``range(count)`` (1 <= chosen <= count), each the middle of its share.

    (j + 0.5) / chosen < 1 for every j < chosen, so each index is below ``count``.
    """
    return sorted({int((j + 0.5) * count / chosen) for j in range(chosen)})


def _held_out_blocks(
    times: torch.Tensor, groups: torch.Tensor, val_fraction: float, num_blocks: int
) -> torch.Tensor:
    if num_blocks < 2:
        raise ConfigError(f"data.num_blocks={num_blocks}: must be >= 2 for data.split=blocks")
    held_out = torch.zeros(times.shape[0], dtype=torch.bool)
    chosen = max(1, round(num_blocks * val_fraction))
    val_blocks = torch.tensor(_evenly_spaced(num_blocks, chosen))
    for group in groups.unique():
        members = (groups == group).nonzero().flatten()
        if members.numel() < num_blocks:
            raise ConfigError(
                f"data.num_blocks={num_blocks}: video {int(group)} has only {members.numel()}"
                " frames; lower data.num_blocks or use data.split=none"
            )
        ordered = members[torch.argsort(times[members], stable=True)]
        block_of = torch.arange(ordered.numel()) * num_blocks // ordered.numel()
        held_out[ordered[torch.isin(block_of, val_blocks)]] = True
    return held_out


def _held_out_videos(groups: torch.Tensor, val_fraction: float) -> torch.Tensor:
    videos = groups.unique()
    if videos.numel() < 2:
        raise ConfigError(
            "data.split=video: the data has a single video; add a `video` column to labels.csv"
            " or use data.split=blocks"
        )
    chosen = min(videos.numel() - 1, max(1, round(videos.numel() * val_fraction)))
    val_videos = videos[_evenly_spaced(videos.numel(), chosen)]
    return torch.isin(groups, val_videos)


def _drop_near(
    keep: torch.Tensor,
    held_out: torch.Tensor,
    times: torch.Tensor,
    groups: torch.Tensor,
    gap: float,
) -> torch.Tensor:
    if gap <= 0:
        return keep
    keep = keep.clone()
    for group in groups[held_out].unique():
        val_times = times[held_out & (groups == group)].sort().values
        candidates = (keep & (groups == group)).nonzero().flatten()
        t = times[candidates]
        pos = torch.searchsorted(val_times, t).clamp(1, val_times.numel()) - 1
        nearest = torch.minimum(
            (t - val_times[pos]).abs(),
            (t - val_times[(pos + 1).clamp(max=val_times.numel() - 1)]).abs(),
        )
        keep[candidates[nearest <= gap]] = False
    return keep
