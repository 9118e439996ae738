"""Read frames of a video file (mp4, avi, mov, mkv, ...) with PyAV.

The labels CSV has the columns of ``labels.csv`` (see :mod:`fastap_lab.data.frames`), except that
``frame`` holds the 0-based frame index within the video (decode order). Frames are decoded once,
in index order; only the frames the CSV lists are kept, in CSV row order. Without a CSV (allowed
when require_labels=False) every frame is kept, in index order, without labels.

Frames are converted with the rules of :mod:`fastap_lab.data.frames`: channels=1 takes the
video's luma through FFmpeg's "gray" conversion, channels=3 its "rgb24" conversion; then each
frame is resized to image_size x image_size (PIL bilinear). Without a ``time`` column the time of
frame ``i`` is ``i / average frame rate`` in seconds (frame index when the rate is unknown).
"""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
from PIL import Image

from fastap_lab.data.decode import (
    SourceInfo,
    check_decode_settings,
    source_notes,
    to_channels_and_size,
)
from fastap_lab.data.frames import FrameSet, build_frameset
from fastap_lab.data.label_table import LabelTable, read_label_table
from fastap_lab.errors import DataError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")


def _frame_indices(table: LabelTable) -> list[int]:
    """The ``frame`` column as non-negative integers (one per row, all different)."""
    indices, first_line = [], {}
    for key, line in zip(table.keys, table.lines, strict=True):
        try:
            index = int(key)
        except ValueError:
            index = -1
        if index < 0:
            raise DataError(
                f"{table.where} line {line}: frame {key!r} is not a frame index; for a video the "
                "'frame' column holds 0-based integer frame indices"
            )
        if index in first_line:
            raise DataError(
                f"{table.where}: frame index {index} is listed twice (lines {first_line[index]}, "
                f"{line}); keep one row per frame"
            )
        first_line[index] = line
        indices.append(index)
    return indices


def _cannot_decode(path: Path, reason: object) -> DataError:
    return DataError(
        f"{path}: cannot decode this video ({reason}); convert it, e.g. "
        f"`ffmpeg -i {path.name} -c:v libx264 -pix_fmt yuv420p out.mp4`, or export its frames "
        "to a folder frames/ with a labels.csv"
    )


def _decode_video(
    path: Path, wanted: set[int] | None, channels: int, image_size: int
) -> tuple[dict[int, np.ndarray], int, float | None, SourceInfo]:
    """Kept frames {index: uint8 [C, S, S]}, frame count, average frame rate, source info."""
    pixel_format = "gray" if channels == 1 else "rgb24"
    kept, count = {}, 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise _cannot_decode(path, "the file has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame-parallel decoding; order is unchanged
            rate = float(stream.average_rate) if stream.average_rate else None
            info = SourceInfo(stream.codec_context.pix_fmt or "?", (stream.width, stream.height))
            for frame in container.decode(stream):
                if wanted is None or count in wanted:
                    image = Image.fromarray(frame.to_ndarray(format=pixel_format))
                    kept[count] = to_channels_and_size(image, channels, image_size)
                count += 1
    except (av.FFmpegError, OSError, ValueError) as error:
        raise _cannot_decode(path, error) from error
    if count == 0:
        raise _cannot_decode(path, "no frame could be decoded")
    return kept, count, rate, info


def load_video(
    path: str | Path,
    labels_csv: str | Path | None,
    *,
    channels: int = 1,
    image_size: int = 64,
    require_labels: bool = True,
) -> FrameSet:
    """Decode the frames of ``path`` that ``labels_csv`` lists (see the module docstring).

    Names are ``f"{video file name}#{index}"``; groups come from a ``video`` column, else one
    group named after the video file.
    """
    check_decode_settings(channels, image_size)
    path = Path(path).expanduser()
    if path.is_dir():
        raise DataError(
            f"data.video={path}: a folder, not a video file; give the video file (data.video="
            "clip.mp4), or for a folder of frames use data=frames data.root=<folder>"
        )
    if not path.is_file():
        raise DataError(f"video {path} does not exist; check data.root= / the video path")
    if labels_csv is None and require_labels:
        raise DataError(
            f"no labels CSV given for video {path}; give one with columns frame,label "
            "(frame = 0-based frame index) or set data.require_labels=false"
        )
    table = None
    if labels_csv is not None:
        labels_csv = Path(labels_csv).expanduser()
        if not labels_csv.is_file():
            raise DataError(f"labels CSV {labels_csv} for video {path.name} does not exist")
        table = read_label_table(labels_csv, key_column="frame", need_label=require_labels)
    indices = None if table is None else _frame_indices(table)
    kept, count, rate, info = _decode_video(
        path, None if indices is None else set(indices), channels, image_size
    )
    if indices is None:
        indices = list(range(count))
        table = LabelTable.from_keys(path, "frame", [str(i) for i in indices])
    if beyond := [(i, n) for i, n in zip(indices, table.lines, strict=True) if i >= count]:
        index, line = beyond[0]
        raise DataError(
            f"{table.where} line {line}: frame index {index} is beyond the video {path.name}, "
            f"which has {count} frames (indices 0..{count - 1}); {len(beyond)} row(s) affected"
        )
    notes = source_notes([info] * len(indices), channels=channels, image_size=image_size)
    times = np.asarray(indices, dtype=np.float64)
    if rate and math.isfinite(rate) and rate > 0:
        times = times / rate
    else:
        notes.append(f"{path.name} has no frame rate; times are frame indices")
    return build_frameset(
        np.stack([kept[i] for i in indices]), table, names=[f"{path.name}#{i}" for i in indices],
        root=path.parent, notes=notes, default_times=times, default_group=path.name,
    )  # fmt: skip
