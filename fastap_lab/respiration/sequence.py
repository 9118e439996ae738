"""A sequence as the surrogate and the gate read it: frames, labels CSV, times, frame keys.

The frames of a data config (a plain dict, :func:`fastap_lab.data.sources.load_source_config`)
with the path of their labels CSV, their times in seconds (labels.csv's ``time`` column, else
``fps``, else the source's frame times) and the ``frame`` value of each row. Pure: no Hydra.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from fastap_lab.data.sources import is_indexed, load_source_config
from fastap_lab.errors import ConfigError


def load_frames(data: Mapping):
    """Load the frames of a data config (a plain dict).

    (FrameSet, path of its labels CSV or None, whether its frames are addressed by index:
    a video, a DICOM / NIfTI sequence).
    """
    frames = load_source_config(data)
    if is_indexed(data):
        csv = data.get("labels_csv")
        return frames, None if csv is None else Path(csv).expanduser(), True
    return frames, frames.root / "labels.csv", False


def frame_times(frames, fps, has_time: bool, is_video: bool, notes: list) -> tuple:
    """(times float64 [N] in seconds, where they come from).

    ``fps``: the ``fps=`` given (None: not given); a note is added to ``notes`` when the times
    do not come from labels.csv's ``time`` column.
    """
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, int | float) or fps <= 0):
        raise ConfigError(f"fps={fps!r}: give the frame rate in frames per second, e.g. fps=10")
    if has_time:
        return frames.times.double(), "labels.csv time column (seconds)"
    if fps is not None:
        notes.append(f"no 'time' column: time = frame index / fps={fps:g}")
        index = torch.arange(len(frames), dtype=torch.float64)
        return index / float(fps), f"frame index / fps={fps:g}"
    if is_video:
        notes.append("no 'time' column: time = the source's frame times (a video's frame rate,"
                     " a DICOM / NIfTI file's frame time, else data.fps)")  # fmt: skip
        return frames.times.double(), "the source's frame times"
    raise ConfigError(
        f"{frames.root}: labels.csv has no 'time' column, so the frame times (and the respiratory"
        " band in Hz) are unknown; add a 'time' column in seconds or give fps=<frames per second>"
    )


def frame_keys(frames, is_video: bool) -> list[str]:
    """The ``frame`` value of each row as in labels.csv (a video's 0-based frame index)."""
    return [name.rsplit("#", 1)[-1] for name in frames.names] if is_video else list(frames.names)
