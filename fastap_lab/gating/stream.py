"""Gating a long video in bounded memory, chunk by chunk.

Gate a long video in bounded memory: decode ``gate.chunk_frames`` frames at a time, score
them, keep only the scores (8 bytes a frame). Used for ``data=video`` with the ``embedding`` or
``pixels`` method (the surrogate needs every frame at once).

What needs statistics of the sequence takes them from the first chunk: the pixel
standardisation (``pixels``) and the BatchNorm statistics (``embedding`` with ``adapt``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from fastap_lab.data.label_table import read_label_table
from fastap_lab.data.video import stream_video, video_rate
from fastap_lab.errors import DataError
from fastap_lab.gating.scoring import embedding_scorer, pixel_scorer
from fastap_lab.gating.sequence import GatedSequence


def streams(data: Mapping, method: str) -> bool:
    """Whether a gate streams its video chunk by chunk.

    Whether a gate streams: a video source (``data``: the data config) and a method that
    scores frame by frame.
    """
    return data.get("root") is None and data.get("video") is not None and method != "surrogate"


def frame_at(path: Path, index: int, channels: int, image_size: int) -> torch.Tensor:
    """uint8 [C, S, S]: frame ``index`` of the video (decoding up to it)."""
    for start, chunk in stream_video(path, channels=channels, image_size=image_size, chunk=256):
        if start <= index < start + len(chunk):
            return torch.from_numpy(chunk[index - start])
    raise DataError(
        f"reference={index}: video {path} has fewer frames; give a frame index in range"
    )


class ChunkScorer:
    """Scores one chunk of frames against the reference, fitted on the first chunk it sees."""

    def __init__(self, values: dict, embedder, reference: torch.Tensor, is_frame: bool) -> None:
        self.values, self.embedder, self.reference, self.is_frame = (
            values,
            embedder,
            reference,
            is_frame,
        )
        self.score, self.details = None, {}

    def __call__(self, frames: torch.Tensor) -> np.ndarray:
        """Scores of ``frames``; the scorer is fitted on the first chunk it sees."""
        if self.score is None:
            self.score = self._fit(frames)
        return self.score(frames)

    def _fit(self, first: torch.Tensor):
        values = self.values
        if values["method"] == "pixels":
            score, details = pixel_scorer(
                first, self.reference, values["pixel_size"], bool(values["adapt"])
            )
            self.details = {"features": details["features"] + " (first chunk)"}
            return score
        score, self.details = embedding_scorer(
            self.embedder, first, self.reference, reference_is_frame=self.is_frame,
            adapt=bool(values["adapt"]), batch_size=values["batch_size"],
            adapted_on="the first chunk of the gated video",
        )  # fmt: skip
        return score


def table_columns(
    csv: str | None, count: int
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Labels, times and displacement from a video's labels CSV, or Nones.

    (labels int64 [N] with -1 unlisted, times float64 [N] NaN unlisted, displacement [N] NaN
    unlisted) from a video's labels CSV (``frame`` = 0-based index), or Nones without one.
    """
    if csv is None:
        return None, None, None
    table = read_label_table(Path(csv).expanduser(), key_column="frame", need_label=False)
    index = np.array([int(key) for key in table.keys])
    inside = index < count
    labels = times = displacement = None
    if table.labels is not None:
        labels = np.full(count, -1, dtype=np.int64)
        labels[index[inside]] = np.asarray(table.labels)[inside]
    if table.times is not None:
        times = np.full(count, np.nan)
        times[index[inside]] = np.asarray(table.times)[inside]
    if "displacement" in table.extras:
        displacement = np.full(count, np.nan)
        displacement[index[inside]] = np.asarray(table.extras["displacement"])[inside]
    return labels, times, displacement


def listed_or_rate_times(
    times: np.ndarray | None, count: int, rate: float | None, path: Path, fix: str
) -> tuple[np.ndarray, str | None]:
    """A streamed video's frame times, and a note when they are derived.

    The labels CSV's times (float64 [count]) when every frame has one, else frame index / ``rate``
    with a note saying so; no rate either: one DataError line ending in ``fix``.
    """
    if times is not None and np.isfinite(times).all():
        return times, None
    if not rate or not math.isfinite(rate):
        raise DataError(f"video {path}: no frame rate known{fix}")
    return np.arange(count) / float(rate), f"time = frame index / {float(rate):g} frames per second"


def stream_scores(
    video: Path, labels_csv: str | None, decode: dict, fps: float | None, values: dict, embedder,
    reference: int | torch.Tensor, record: dict, notes: list[str],
) -> GatedSequence:  # fmt: skip
    """Score every frame of ``video`` chunk by chunk (see the module docstring).

    Args:
        video: the video file.
        labels_csv: its labels CSV (``frame`` = index) or None.
        decode: ``channels`` and ``image_size``.
        fps: frames per second when the video and the CSV give no time (None: the video's
            rate).
        values: ``gate.*``.
        embedder: a checkpoint's (``embedding``) or None (``pixels``).
        reference: a frame index or an uint8 [C, H, W] image.
        record: gate.json's reference entry (extended here).
        notes: gate.json's notes so far (extended here).
    """
    from tqdm import tqdm

    path, channels, image_size = Path(video).expanduser(), decode["channels"], decode["image_size"]
    rate, listed = video_rate(path)
    is_frame = isinstance(reference, int)
    image = frame_at(path, reference, channels, image_size) if is_frame else reference
    scorer = ChunkScorer(values, embedder, image, is_frame)
    parts = []
    bar = tqdm(total=listed or None, unit="frame", disable=not values["progress"], desc="gate")
    for _, chunk in stream_video(path, channels=channels, image_size=image_size,
                                 chunk=values["chunk_frames"]):  # fmt: skip
        parts.append(scorer(torch.from_numpy(chunk)))
        bar.update(len(chunk))
    bar.close()
    scores = np.concatenate(parts)
    count = scores.size
    labels, times, displacement = table_columns(labels_csv, count)
    times, note = listed_or_rate_times(times, count, fps or rate, path,
                                       "; give fps=<frames per second>")  # fmt: skip
    notes += [note] if note else []
    sequence = GatedSequence(
        keys=[str(i) for i in range(count)], times=times, groups=np.zeros(count, dtype=np.int64),
        scores=scores, labels=labels, displacement=displacement, reference=record, notes=notes,
        details={"video": str(path), **scorer.details, "streamed": {"chunk_frames": values["chunk_frames"]}},
    )  # fmt: skip
    if is_frame and displacement is not None and np.isfinite(displacement[reference]):
        record["displacement"] = float(displacement[reference])
    return sequence
