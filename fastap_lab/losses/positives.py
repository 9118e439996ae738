"""Positive masks: which pairs of a batch count as positives (one home for every objective).

Each builder returns bool [N, N] with the diagonal False (an item is never its own positive):
same label, other views of the same frame, or close in time / in breathing phase.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fastap_lab.errors import ConfigError


def positives_from_labels(labels: Tensor) -> Tensor:
    """[N, N] bool: same label, diagonal False. ``labels``: [N] integer class ids."""
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    # One N×N op instead of three (eye, invert, and): each costs a time slice on a busy CPU.
    return same.fill_diagonal_(False)


def positives_from_views(
    num_frames: int, num_views: int = 2, device: torch.device | str | None = None
) -> Tensor:
    """Positives of stacked views: the other views of the same frame.

    [V·F, V·F] bool for embeddings stacked view-major (view 0 of frames 0..F−1, then view 1,
    ...): the other views of the same frame are its only positives (diagonal False).
    """
    frame_of_row = torch.arange(num_frames, device=device).repeat(num_views)
    return positives_from_labels(frame_of_row)


def positives_from_times(times: Tensor, window: float, groups: Tensor | None = None) -> Tensor:
    """[N, N] bool: |t_i − t_j| <= window and same group (e.g. video), diagonal False.

    ``times``: [N] float (e.g. seconds or breathing phase); ``groups``: [N] integer ids, or None
    when all rows come from one sequence.
    """
    if not window >= 0:
        raise ConfigError(f"window={window!r}: the time window must be >= 0")
    close = (times.unsqueeze(0) - times.unsqueeze(1)).abs() <= window
    if groups is not None:
        close &= groups.unsqueeze(0) == groups.unsqueeze(1)
    return close & ~torch.eye(times.shape[0], dtype=torch.bool, device=times.device)
