"""Sequences whose frames are addressed by a 0-based index (DICOM, NIfTI).

Their labels CSV, their frame times, and the :class:`~fastap_lab.data.frames.FrameSet` they
become.

The labels CSV is the one of ``data=video``: columns ``frame,label[,time][,video]``, ``frame``
the 0-based index in the sequence's order. Only the listed frames are kept, in CSV row order;
without a CSV (``data.require_labels=false``) every frame, in order, without labels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fastap_lab.data.frames import FrameSet, build_frameset
from fastap_lab.data.label_table import LabelTable, frame_indices, read_label_table
from fastap_lab.errors import ConfigError, DataError


def read_index_labels(
    source: Path, labels_csv: str | Path | None, require_labels: bool
) -> LabelTable | None:
    """The labels CSV of ``source`` (checked before any pixel is decoded), or None."""
    if labels_csv is None:
        if require_labels:
            raise DataError(
                f"no labels CSV given for {source}; give data.labels_csv=FILE with columns"
                " frame,label (frame = 0-based frame index) or set data.require_labels=false"
            )
        return None
    labels_csv = Path(labels_csv).expanduser()
    if not labels_csv.is_file():
        raise DataError(f"labels CSV {labels_csv} for {source.name} does not exist")
    return read_label_table(labels_csv, key_column="frame", need_label=require_labels)


def check_fps(fps) -> float | None:
    """``data.fps`` as a positive float, or None; else one ConfigError line."""
    if fps is None:
        return None
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps < math.inf:
        raise ConfigError(f"data.fps={fps!r}: give the frame rate in frames per second, e.g. 10")
    return float(fps)


def sequence_times(
    count: int, file_times: np.ndarray | None, source: str, fps: float | None, notes: list[str]
) -> np.ndarray:
    """float64 [count] seconds: the file's times, else index / ``data.fps``, else the index.

    Args:
        count: the number of frames in the sequence.
        file_times: times in seconds the file gives (None: it gives none).
        source: where the file's times come from (or why there are none), for the notes.
        fps: the checked ``data.fps`` (:func:`check_fps`), or None.
        notes: the sequence's notes; the time source used is appended.
    """
    if file_times is not None:
        notes.append(f"time: {source}")
        if fps is not None:
            notes.append(f"data.fps={fps:g} not used: the file gives the frame times")
        return np.asarray(file_times, dtype=np.float64)
    index = np.arange(count, dtype=np.float64)
    if fps is not None:
        notes.append(f"time: frame index / data.fps={fps:g} ({source})")
        return index / fps
    notes.append(f"time: frame index ({source}; set data.fps=<frames per second> for seconds)")
    return index


def indexed_frameset(
    source: Path, images: np.ndarray, times: np.ndarray, table: LabelTable | None,
    notes: list[str],
) -> FrameSet:  # fmt: skip
    """The FrameSet of a decoded sequence.

    Args:
        source: the file or folder (names are ``f"{source.name}#{index}"``, the group name is
            ``source.name``, the root its folder).
        images: uint8 [N, C, S, S] of every frame, in sequence order.
        times: float64 [N] seconds.
        table: the labels CSV (:func:`read_index_labels`) or None (every frame, no labels).
        notes: notes on the sequence (decoding, time, intensity), kept in the FrameSet.
    """
    count = len(images)
    if table is None:
        indices = list(range(count))
        table = LabelTable.from_keys(source, "frame", [str(i) for i in indices])
    else:
        indices = frame_indices(table)
    if beyond := [(i, n) for i, n in zip(indices, table.lines, strict=True) if i >= count]:
        index, line = beyond[0]
        raise DataError(
            f"{table.where} line {line}: frame index {index} is beyond {source.name}, which has"
            f" {count} frames (indices 0..{count - 1}); {len(beyond)} row(s) affected"
        )
    return build_frameset(
        images[indices], table, names=[f"{source.name}#{i}" for i in indices],
        root=source if source.is_dir() else source.parent, notes=notes,
        default_times=np.asarray(times)[indices], default_group=source.name,
    )  # fmt: skip
