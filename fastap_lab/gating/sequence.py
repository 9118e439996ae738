"""A gated sequence: its per-frame scores against the reference and the truth it carries.

``GatedSequence`` is what every scoring path (frames in memory, a streamed video) hands to
:func:`summarise`, which turns it into the gate, the agreement with labels / displacement and
the rows of the output files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from fastap_lab.gating.agreement import displacement_agreement, label_agreement
from fastap_lab.gating.trace import GateTrace, TraceSettings, gate_trace
from fastap_lab.respiration.signal import time_segments


@dataclass
class GatedSequence:
    """Per frame, in the source's order (labels.csv rows / a video's frame index).

    Attributes:
        keys: the ``frame`` value of each row as in labels.csv.
        times: float64 [N] seconds; groups: int64 [N] recording of each frame.
        scores: float64 [N], higher = closer to the reference.
        labels: int64 [N] or None (-1 where a streamed video's CSV does not list the frame).
        displacement: float64 [N] or None (NaN where unknown).
        reference: what the reference is (for gate.json), incl. ``frame`` index when it is one.
        notes: things the user should know (resized reference, skipped metrics, …).
    """

    keys: list[str]
    times: np.ndarray
    groups: np.ndarray
    scores: np.ndarray
    labels: np.ndarray | None = None
    displacement: np.ndarray | None = None
    reference: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)


def segments_of(times: np.ndarray, groups: np.ndarray) -> list[np.ndarray]:
    """Per recording, its frame indices sorted by time.

    :func:`~fastap_lab.respiration.signal.time_segments`, as numpy.
    """
    segments = time_segments(
        torch.from_numpy(np.asarray(times)), torch.from_numpy(np.asarray(groups))
    )
    return [segment.numpy() for segment in segments]


def frames_per_second(times: np.ndarray, segments: list[np.ndarray]) -> float:
    """Frames per second of a sequence; never fails.

    1 / the median positive time step inside recordings; 1.0 when there is none (one frame,
    or every frame at one time: the smoothing windows then count frames). Unlike
    :func:`~fastap_lab.respiration.signal.sampling_rate` (which refuses those) it never fails:
    a gate still works on them.
    """
    steps = np.concatenate([np.diff(times[s]) for s in segments] or [np.zeros(0)])
    steps = steps[steps > 0]
    return float(1.0 / np.median(steps)) if steps.size else 1.0


def in_frames(seconds: float, fps: float, odd: bool = False) -> int:
    """A duration in seconds as a frame count >= 1 (odd for a centred window)."""
    frames = max(int(round(seconds * fps)), 1)
    return frames + 1 if odd and frames % 2 == 0 else frames


def trace_settings(values: dict, fps: float) -> TraceSettings:
    """``gate.*`` (seconds) as TraceSettings (frames) at ``fps``."""
    return TraceSettings(
        threshold=values["threshold"],
        duty_cycle=values["duty_cycle"],
        smooth_frames=in_frames(values["smooth_seconds"], fps, odd=True),
        hysteresis=float(values["hysteresis"]),
        min_window_frames=in_frames(values["min_window_seconds"], fps),
    )


def summarise(
    sequence: GatedSequence, values: dict, positive: int | None
) -> tuple[GateTrace, dict]:
    """Gate the sequence and measure it: (the trace, gate.json's measured part)."""
    segments = segments_of(sequence.times, sequence.groups)
    fps = frames_per_second(sequence.times, segments)
    settings = trace_settings(values, fps)
    trace = gate_trace(sequence.scores, settings, segments)
    record = {
        "threshold": trace.threshold, "threshold_choice": trace.how,
        "smoothing": {"seconds": values["smooth_seconds"], "frames": settings.smooth_frames},
        "hysteresis": settings.hysteresis,
        "min_window": {"seconds": values["min_window_seconds"], "frames": settings.min_window_frames},
        "fps": fps, "num_frames": int(sequence.scores.size),
        "frames_gated": int(trace.gated.sum()), "duty_cycle": float(trace.gated.mean()),
        "labels": None, "displacement": None,
    }  # fmt: skip
    if sequence.labels is not None:
        known = sequence.labels >= 0
        record["labels"] = label_agreement(trace.gated[known], sequence.labels[known], positive)
    else:
        sequence.notes.append("the data has no labels: precision / recall / F1 skipped")
    reference_displacement = sequence.reference.get("displacement")
    if sequence.displacement is not None and reference_displacement is not None:
        known = np.isfinite(sequence.displacement)
        record["displacement"] = displacement_agreement(
            trace.smoothed[known], trace.gated[known], sequence.displacement[known],
            reference_displacement,
        )  # fmt: skip
    return trace, record
