"""Read frames of a video file (mp4, avi, mov, mkv, ...) with PyAV.

The labels CSV has the columns of ``labels.csv`` (see :mod:`fastap_lab.data.frames`), except that
``frame`` holds the 0-based frame index within the video (decode order). Frames are decoded once,
in index order; only the frames the CSV lists are kept, in CSV row order. Without a CSV (allowed
when require_labels=False) every frame is kept, in index order, without labels.

Frames are converted with the rules of :mod:`fastap_lab.data.frames`: channels=1 takes the
video's luma through FFmpeg's "gray" conversion, channels=3 its "rgb24" conversion; then each
frame is resized to image_size x image_size (PIL bilinear). Without a ``time`` column the time of
frame ``i`` is ``i / average frame rate`` in seconds (frame index when the rate is unknown).

A video that decodes fewer frames than its container lists (a cut or damaged copy) is used as
far as it decodes, with a warning naming both counts; when the CSV lists frames past that
point, the error names the video (not the CSV) and both counts.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
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
from fastap_lab.data.label_table import LabelTable, frame_indices, read_label_table
from fastap_lab.errors import DataError

log = logging.getLogger(__name__)
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")


def _cannot_decode(path: Path, reason: object) -> DataError:
    return DataError(
        f"{path}: cannot decode this video ({reason}); convert it, e.g. "
        f"`ffmpeg -i {path.name} -c:v libx264 -pix_fmt yuv420p out.mp4`, or export its frames "
        "to a folder frames/ with a labels.csv"
    )


@dataclass
class DecodedVideo:
    """What :func:`_decode_video` got out of a file."""

    kept: dict[int, np.ndarray]  # {frame index: uint8 [C, S, S]} of the wanted frames
    count: int  # frames decoded
    rate: float | None  # average frame rate
    info: SourceInfo
    listed: int  # frames the container says it holds (0: it does not say)
    expected: int  # about that many from its duration x frame rate (0: unknown)
    stopped: str | None = None  # the decoder error that ended a damaged file early

    def shortfall(self, path: Path) -> str | None:
        """One line when fewer frames decode than the container lists (a cut / damaged file)."""
        # Duration x average rate is approximate (variable frame rates): only a clear gap counts.
        short_of_duration = not self.listed and self.count < 0.9 * self.expected - 1
        if self.listed <= self.count and not short_of_duration and self.stopped is None:
            return None
        if self.listed:
            listed = f"its container lists {self.listed} frames but"
        elif short_of_duration:
            listed = f"its duration and frame rate imply about {self.expected} frames but"
        else:
            listed = "only"
        why = f"; decoding stopped at: {self.stopped}" if self.stopped else ""
        return f"video {path}: {listed} {self.count} could be decoded (a cut or damaged file{why})"


def _decode_video(
    path: Path, wanted: set[int] | None, channels: int, image_size: int
) -> DecodedVideo:
    """Decode every frame in order, keeping the ``wanted`` ones (all when None)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise _cannot_decode(path, "the file has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame-parallel decoding; order is unchanged
            rate = float(stream.average_rate) if stream.average_rate else None
            info = SourceInfo(stream.codec_context.pix_fmt or "?", (stream.width, stream.height))
            kept, count, stopped = _decode_frames(
                container.decode(stream), wanted, channels, image_size
            )
            listed, expected = int(stream.frames or 0), _expected_frames(container, stream, rate)
    except (av.FFmpegError, OSError, ValueError) as error:
        raise _cannot_decode(path, error) from error
    if count == 0:
        raise _cannot_decode(path, "no frame could be decoded")
    return DecodedVideo(kept, count, rate, info, listed, expected, stopped)


def _frames_in_order(decoded, stopped: list[str]):
    """(index, frame) pairs of a PyAV decode iterator, stopping at a late decoder error.

    (index, frame) of a PyAV decode iterator, in order. A decoder error before the first
    frame is raised; a later one (a cut or damaged file) ends the iteration and its text is
    appended to ``stopped``: what decoded is kept.
    """
    count = 0
    while True:
        try:
            frame = next(decoded)
        except StopIteration:
            return
        except (av.FFmpegError, OSError, ValueError) as error:
            if count == 0:
                raise
            stopped.append(" ".join(str(error).split()))
            return
        yield count, frame
        count += 1


def _as_array(frame, channels: int, image_size: int) -> np.ndarray:
    """A decoded frame as uint8 [C, S, S].

    A decoded frame as uint8 [C, S, S] (FFmpeg's gray / rgb24 conversion, then the frames
    rules of resizing).
    """
    pixel_format = "gray" if channels == 1 else "rgb24"
    return to_channels_and_size(
        Image.fromarray(frame.to_ndarray(format=pixel_format)), channels, image_size
    )


def _decode_frames(
    frames, wanted: set[int] | None, channels: int, image_size: int
) -> tuple[dict[int, np.ndarray], int, str | None]:
    """Decode the ``wanted`` frames of a video, tolerating a truncated end.

    (wanted frames {index: uint8 [C, S, S]}, frames decoded, the decoder error that ended
    a truncated file early or None). An error before the first frame is raised.
    """
    kept, count, stopped = {}, 0, []
    for index, frame in _frames_in_order(frames, stopped):
        if wanted is None or index in wanted:
            kept[index] = _as_array(frame, channels, image_size)
        count = index + 1
    return kept, count, stopped[0] if stopped else None


def _expected_frames(container, stream, rate: float | None) -> int:
    """Frames implied by the stream's (else the container's) duration at ``rate``; 0 unknown."""
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / av.time_base
    else:
        return 0
    return round(seconds * rate) if rate and math.isfinite(seconds) and seconds > 0 else 0


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
    indices = None if table is None else frame_indices(table)
    video = _decode_video(path, None if indices is None else set(indices), channels, image_size)
    count, shortfall = video.count, video.shortfall(path)
    if indices is None:
        indices = list(range(count))
        table = LabelTable.from_keys(path, "frame", [str(i) for i in indices])
    if beyond := [(i, n) for i, n in zip(indices, table.lines, strict=True) if i >= count]:
        index, line = beyond[0]
        if shortfall:  # the CSV may well be right: the video lost its end
            raise DataError(
                f"{shortfall}; {table.where} line {line} lists frame {index} ({len(beyond)}"
                " row(s) beyond the decoded frames): copy or export the whole video again"
            )
        raise DataError(
            f"{table.where} line {line}: frame index {index} is beyond the video {path.name}, "
            f"which has {count} frames (indices 0..{count - 1}); {len(beyond)} row(s) affected"
        )
    notes = source_notes([video.info] * len(indices), channels=channels, image_size=image_size)
    if shortfall:
        log.warning("%s; using those %d", shortfall, count)
        notes.append(f"{shortfall}; using those {count}")
    times = np.asarray(indices, dtype=np.float64)
    rate = video.rate
    if rate and math.isfinite(rate) and rate > 0:
        times = times / rate
    else:
        notes.append(f"{path.name} has no frame rate; times are frame indices")
    return build_frameset(
        np.stack([video.kept[i] for i in indices]), table, names=[f"{path.name}#{i}" for i in indices],
        root=path.parent, notes=notes, default_times=times, default_group=path.name,
    )  # fmt: skip


def stream_video(path: str | Path, *, channels: int = 1, image_size: int = 64, chunk: int = 1024):
    """Decode ``path`` in order, ``chunk`` frames at a time, without keeping the video in memory.

    Yields:
        (first frame index, uint8 [B, C, image_size, image_size]) with B <= ``chunk``.

    The frame rate comes from :func:`video_rate`. A file that cannot be opened is one DataError
    line; a file cut short ends the stream early with a warning.
    """
    check_decode_settings(channels, image_size)
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"video {path} does not exist; check data.video=")
    buffer, start, count, stopped = [], 0, 0, []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise _cannot_decode(path, "the file has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in _frames_in_order(container.decode(stream), stopped):
                buffer.append(_as_array(frame, channels, image_size))
                count = index + 1
                if len(buffer) == chunk:
                    yield start, np.stack(buffer)
                    start, buffer = count, []
            if stopped:
                log.warning(
                    "video %s: decoding stopped after %d frames (%s)", path, count, stopped[0]
                )
    except (av.FFmpegError, OSError, ValueError) as error:
        raise _cannot_decode(path, error) from error
    if buffer:
        yield start, np.stack(buffer)
    if count == 0:
        raise _cannot_decode(path, "no frame could be decoded")


def video_rate(path: str | Path) -> tuple[float | None, int]:
    """(average frame rate or None, frames the container lists or 0) without decoding."""
    try:
        with av.open(str(Path(path).expanduser())) as container:
            if not container.streams.video:
                raise _cannot_decode(Path(path), "the file has no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate) if stream.average_rate else None
            return rate, int(stream.frames or 0)
    except (av.FFmpegError, OSError, ValueError) as error:
        raise _cannot_decode(Path(path), error) from error
