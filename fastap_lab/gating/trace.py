"""From a per-frame score to gated frames.

Temporal smoothing, a threshold, hysteresis and a minimum window length. Pure numpy; arrays are in time order of one recording.

A score is "higher = closer to the reference", at most 1, whatever produced it (cosine
similarity of embeddings, closeness on the respiratory surrogate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastap_lab.errors import ConfigError, DataError


@dataclass(frozen=True)
class TraceSettings:
    """How a score trace becomes a gate (conf/gate.yaml ``gate.*``).

    Attributes:
        threshold: ``"auto"`` (:func:`log_distance_otsu` of the smoothed scores) or a number
            on the score's scale.
        duty_cycle: share of frames to gate (0 < d < 1): the threshold is that quantile;
            None: use ``threshold``.
        smooth_frames: width of the centred moving average (frames, odd; 1 = off).
        hysteresis: leaving the gate needs the score to fall this far below the threshold
            (score units; 0 = plain threshold).
        min_window_frames: gated runs shorter than this many frames are dropped (1 = keep all).
    """

    threshold: float | str = "auto"
    duty_cycle: float | None = None
    smooth_frames: int = 1
    hysteresis: float = 0.0
    min_window_frames: int = 1


@dataclass
class GateTrace:
    """``smoothed`` float64 [N]; ``gated`` bool [N]; the threshold used and how it was chosen."""

    smoothed: np.ndarray
    gated: np.ndarray
    threshold: float
    how: str


def moving_average(scores: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of ``scores`` over ``width`` frames.

    Centred moving average of float [N] over ``width`` frames; the ends average what exists
    (no padding values invented).
    """
    if width <= 1:
        return scores.astype(np.float64)
    if scores.size < width:
        raise DataError(
            f"{scores.size} frames is shorter than the smoothing window ({width} frames); lower"
            " gate.smooth_seconds or gate a longer sequence"
        )
    half = width // 2
    sums = np.concatenate([[0.0], np.cumsum(scores, dtype=np.float64)])
    index = np.arange(scores.size)
    low, high = np.maximum(index - half, 0), np.minimum(index + half + 1, scores.size)
    return (sums[high] - sums[low]) / (high - low)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values``.

    Otsu's threshold of float [N]: the cut maximising the between-class variance of a
    ``bins``-bin histogram (the middle of a tie). A constant input returns its value.
    """
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return low
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    mass = np.cumsum(counts * centres)
    below, above = weight[:-1], weight[-1] - weight[:-1]
    ok = (below > 0) & (above > 0)
    mean_below = np.divide(mass[:-1], below, out=np.zeros_like(mass[:-1]), where=ok)
    mean_above = np.divide(mass[-1] - mass[:-1], above, out=np.zeros_like(mass[:-1]), where=ok)
    between = np.where(ok, below * above * (mean_below - mean_above) ** 2, -1.0)
    # Every cut in an empty gap between two clusters scores the same: take the gap's middle.
    best = np.flatnonzero(between >= between.max() * (1 - 1e-12))
    return float((edges[1:][best[0]] + edges[1:][best[-1]]) / 2)


def log_distance_otsu(smoothed: np.ndarray) -> float:
    """The score at Otsu's threshold of ``log(1 - score)`` (scores are at most 1).

    Why on a log scale: the distance of a frame to the reference is skewed - most frames are
    far, the few at the reference's position pile up near 0 - so on the score itself Otsu
    splits the far frames in two; on the log distance the near cluster is a mode of its own.
    """
    distance = np.clip(1.0 - smoothed, 1e-6, None)
    return float(1.0 - np.exp(otsu_threshold(np.log(distance))))


def choose_threshold(smoothed: np.ndarray, settings: TraceSettings) -> tuple[float, str]:
    """(threshold, how it was chosen) from ``duty_cycle``, ``"auto"`` or a number."""
    if settings.duty_cycle is not None:
        value = float(np.quantile(smoothed, 1.0 - settings.duty_cycle))
        return (
            value,
            f"duty cycle {settings.duty_cycle:g}: the {1 - settings.duty_cycle:.0%} quantile",
        )
    if settings.threshold == "auto":
        return log_distance_otsu(smoothed), "auto: Otsu's threshold of log(1 - smoothed score)"
    return float(settings.threshold), "given (gate.threshold)"


def hysteresis_gate(smoothed: np.ndarray, threshold: float, margin: float) -> np.ndarray:
    """Bool [N]: enter at ``>= threshold``, stay while ``>= threshold - margin``."""
    if margin <= 0:
        return smoothed >= threshold
    gated = np.zeros(smoothed.size, dtype=bool)
    inside = False
    for i, value in enumerate(smoothed):
        inside = value >= threshold or (inside and value >= threshold - margin)
        gated[i] = inside
    return gated


def drop_short_windows(gated: np.ndarray, min_frames: int) -> np.ndarray:
    """Bool [N] with runs of True shorter than ``min_frames`` set False."""
    if min_frames <= 1 or not gated.any():
        return gated
    edges = np.diff(np.concatenate([[0], gated.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    kept = gated.copy()
    for start, end in zip(starts, ends, strict=True):
        if end - start < min_frames:
            kept[start:end] = False
    return kept


def gate_trace(
    scores: np.ndarray, settings: TraceSettings, segments: list[np.ndarray] | None = None
) -> GateTrace:
    """Smooth, threshold (with hysteresis), drop short windows.

    Args:
        scores: float [N], higher = closer to the reference.
        settings: see :class:`TraceSettings`.
        segments: index arrays [n_i], each one recording in time order (smoothing, hysteresis
            and windows never cross recordings); None: ``scores`` is one recording in order.
            The threshold is chosen over all frames.
    """
    scores = np.asarray(scores, dtype=np.float64)
    segments = [np.arange(scores.size)] if segments is None else segments
    smoothed = np.empty_like(scores)
    for index in segments:
        smoothed[index] = moving_average(scores[index], settings.smooth_frames)
    threshold, how = choose_threshold(smoothed, settings)
    gated = np.zeros(scores.size, dtype=bool)
    for index in segments:
        inside = hysteresis_gate(smoothed[index], threshold, settings.hysteresis)
        gated[index] = drop_short_windows(inside, settings.min_window_frames)
    return GateTrace(smoothed=smoothed, gated=gated, threshold=threshold, how=how)


def check_trace_settings(values: dict) -> None:
    """One ConfigError line for an out-of-range ``gate.*`` value."""
    threshold, duty = values.get("threshold", "auto"), values.get("duty_cycle")
    if threshold != "auto" and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float)
    ):
        raise ConfigError(
            f"gate.threshold={threshold!r}: give auto or a number on the score's scale"
        )
    if duty is not None:
        if isinstance(duty, bool) or not isinstance(duty, int | float) or not 0 < duty < 1:
            raise ConfigError(
                f"gate.duty_cycle={duty!r}: give a share of frames, 0 < d < 1 (e.g. 0.3), or null"
            )
        if threshold != "auto":
            raise ConfigError(
                f"gate.duty_cycle={duty} and gate.threshold={threshold}: give one of them"
                " (gate.threshold=auto when a duty cycle sets it)"
            )
    for name in ("smooth_seconds", "hysteresis", "min_window_seconds"):
        value = values.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"gate.{name}={value!r}: must be a number >= 0 (0 switches it off)")
