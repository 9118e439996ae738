"""Time courses of the breathing phantom: respiratory displacement and per-frame nuisances.

Functions take a ``PhantomSpec`` (see :mod:`fastap_lab.data.phantom`), the frame times
float64 ``[N]`` in seconds and a dedicated ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOLD_RAMP_IN_SECONDS = 1.5  # breathing in to the hold position
HOLD_RAMP_OUT_SECONDS = 2.0  # breathing out after the hold
HOLD_RAMP_SECONDS = HOLD_RAMP_IN_SECONDS + HOLD_RAMP_OUT_SECONDS
HOLD_TREMOR = 0.003  # residual motion while holding, in displacement units
INHALE_FRACTION = 0.4  # inhaling is quicker than exhaling


def _smooth_wander(times: np.ndarray, rng: np.random.Generator, periods=(30.0, 90.0)):
    """Slow random curve in about [-1, 1]: two sinusoids of random period and phase."""
    waves = [
        np.sin(2 * np.pi * times / rng.uniform(*periods) + rng.uniform(0, 2 * np.pi))
        for _ in range(2)
    ]
    return 0.5 * (waves[0] + waves[1])


def _breath_shape(phase: np.ndarray) -> np.ndarray:
    """One breath over ``phase`` in [0, 1): 0 → 1 (inhale) → 0 (exhale), smooth at both ends."""
    warped = np.where(
        phase < INHALE_FRACTION,
        0.5 * phase / INHALE_FRACTION,
        0.5 + 0.5 * (phase - INHALE_FRACTION) / (1.0 - INHALE_FRACTION),
    )
    return 0.5 * (1.0 - np.cos(2.0 * np.pi * warped))


def _free_breathing(spec, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Back-to-back breaths of random period and depth over a slowly drifting baseline."""
    end = times[-1] + 1.0 / spec.fps
    starts, periods, depths = [], [], []
    start = -rng.uniform(*spec.breath_seconds)  # the sequence starts mid-breath
    while start < end:
        period = rng.uniform(*spec.breath_seconds)
        shallow = rng.random() < spec.shallow_breath_fraction
        depths.append(rng.uniform(0.3, 0.6) if shallow else rng.uniform(0.85, 1.0))
        starts.append(start)
        periods.append(period)
        start += period
    cycle = np.searchsorted(starts, times, side="right") - 1
    phase = (times - np.asarray(starts)[cycle]) / np.asarray(periods)[cycle]
    baseline = 0.04 + 0.03 * _smooth_wander(times, rng)
    return baseline + (1.0 - baseline) * np.asarray(depths)[cycle] * _breath_shape(phase)


def _plan_holds(spec, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Plateau (start, end) seconds of each hold, spread with random gaps over the sequence."""
    count = spec.num_breath_holds
    holds = rng.uniform(*spec.hold_seconds, size=count)
    free_time = spec.duration - float(np.sum(holds + HOLD_RAMP_SECONDS))
    gaps = rng.uniform(0.5, 1.5, size=count + 1)
    gaps *= free_time / gaps.sum()
    plateaus, clock = [], 0.0
    for gap, hold in zip(gaps[:-1], holds, strict=True):
        start = clock + gap + HOLD_RAMP_IN_SECONDS
        plateaus.append((float(start), float(start + hold)))
        clock = start + hold + HOLD_RAMP_OUT_SECONDS
    return plateaus


def _hold_window(times: np.ndarray, start: float, end: float) -> np.ndarray:
    """1 on [start, end], 0 far away, cosine ramps of HOLD_RAMP_IN / OUT seconds between."""
    rise = np.clip((times - (start - HOLD_RAMP_IN_SECONDS)) / HOLD_RAMP_IN_SECONDS, 0.0, 1.0)
    fall = np.clip(((end + HOLD_RAMP_OUT_SECONDS) - times) / HOLD_RAMP_OUT_SECONDS, 0.0, 1.0)
    return 0.5 * (1.0 - np.cos(np.pi * np.minimum(rise, fall)))


def respiratory_waveform(
    spec, times: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Displacement float64 [N] in [0, 1] and the hold plateaus [(start, end)] in seconds."""
    free = _free_breathing(spec, times, rng)
    holds = _plan_holds(spec, rng)
    window = np.zeros_like(times)
    for start, end in holds:
        window = np.maximum(window, _hold_window(times, start, end))
    held = spec.hold_position + HOLD_TREMOR * rng.standard_normal(times.shape)
    return np.clip(free + window * (held - free), 0.0, 1.0), holds


@dataclass(frozen=True)
class NuisanceTracks:
    """Per-frame nuisance tracks of a phantom sequence.

    Per-frame nuisances: cardiac [N] in [-1, 1], shift [N, 2] (normalised units),
    rotation [N] (radians), gain [N], bias [N, 5] (coefficients of ``bias_field``), gamma [N].
    """

    cardiac: np.ndarray
    shift: np.ndarray
    rotation: np.ndarray
    gain: np.ndarray
    bias: np.ndarray
    gamma: np.ndarray


def _autoregressive(rng: np.random.Generator, shape: tuple[int, ...], rho: float):
    """Unit-variance AR(1) noise along axis 0: pose wobbles, it does not teleport."""
    noise = rng.standard_normal(shape)
    for index in range(1, shape[0]):
        noise[index] = rho * noise[index - 1] + np.sqrt(1.0 - rho * rho) * noise[index]
    return noise


def _gain(spec, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Slow drift plus a few abrupt steps (e.g. an auto-gain change), as a multiplier."""
    log_gain = spec.gain_drift * _smooth_wander(times, rng)
    for _ in range(int(rng.integers(2, 5))):
        step = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0) * spec.gain_drift
        log_gain = log_gain + step * (times >= rng.uniform(0, times[-1] + 1e-9))
    return np.exp(log_gain)


def _beat_phase(spec, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cardiac phase (radians) [N] of a heart rate wandering by about 8 %."""
    rate = spec.cardiac_hz * (1.0 + 0.08 * _smooth_wander(times, rng, (10.0, 40.0)))
    return 2 * np.pi * np.cumsum(rate) / spec.fps + rng.uniform(0, 2 * np.pi)


def nuisance_tracks(
    spec, times: np.ndarray, rng: np.random.Generator, gamma_rng: np.random.Generator
) -> NuisanceTracks:
    """Draws every per-frame nuisance of the sequence at ``times`` (``spec.nuisance_mode``).

    ``gamma_rng`` draws the classic mode's gamma, so the classic tracks of ``rng`` stay those
    of the first generator version.
    """
    if spec.nuisance_mode == "classic":
        return _classic_tracks(spec, times, rng, gamma_rng)
    return _acquisition_tracks(spec, times, rng)


def _classic_tracks(spec, times, rng, gamma_rng) -> NuisanceTracks:
    """Pose wobble (AR(1), rho 0.5), gain drift with steps, a slowly drifting bias field."""
    pixel = 2.0 / spec.image_size
    shift = np.clip(0.8 * _autoregressive(rng, (len(times), 2), 0.5), -1.0, 1.0)
    rotation = np.clip(0.8 * _autoregressive(rng, (len(times),), 0.5), -1.0, 1.0)
    beat_phase = _beat_phase(spec, times, rng)
    offsets = rng.uniform(-1.0, 1.0, 5)
    bias = np.stack([
        offsets[k] + 0.6 * _smooth_wander(times, rng, (40.0, 120.0)) for k in range(5)
    ], axis=1)  # fmt: skip
    log_gamma = np.clip(_autoregressive(gamma_rng, (len(times),), 0.5), -2.0, 2.0)
    return NuisanceTracks(
        cardiac=np.cos(beat_phase + 0.3 * rng.standard_normal(len(times))),
        shift=shift * spec.jitter_px * pixel,
        rotation=rotation * np.deg2rad(spec.rotation_degrees),
        gain=_gain(spec, times, rng),
        bias=0.5 * spec.bias_strength * bias,
        gamma=np.exp(spec.gamma_jitter * log_gamma),
    )


def _acquisition_tracks(spec, times, rng) -> NuisanceTracks:
    """Acquisition nuisances as clipped unit-variance AR(1) processes.

    Shift, rotation, gain, bias and gamma as unit-variance AR(1) processes clipped at 2 sd:
    independent per frame (``independent``) or correlated over ``drift_seconds`` (``drift``).
    """
    rho = 0.0
    if spec.nuisance_mode == "drift":
        rho = float(np.exp(-1.0 / (spec.fps * spec.drift_seconds)))

    def process(*channels: int) -> np.ndarray:
        return np.clip(_autoregressive(rng, (len(times), *channels), rho), -2.0, 2.0)

    pixel = 2.0 / spec.image_size
    beat_phase = _beat_phase(spec, times, rng)
    return NuisanceTracks(
        cardiac=np.cos(beat_phase + 0.3 * rng.standard_normal(len(times))),
        shift=np.clip(0.8 * process(2), -1.0, 1.0) * spec.jitter_px * pixel,
        rotation=np.clip(0.8 * process(), -1.0, 1.0) * np.deg2rad(spec.rotation_degrees),
        gain=np.exp(spec.gain_drift * process()),
        bias=0.5 * spec.bias_strength * process(5),
        gamma=np.exp(spec.gamma_jitter * process()),
    )
