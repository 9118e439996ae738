"""One surrogate run, end to end: the work of ``python -m fastap_lab.surrogate``.

A data config's frames (or per-frame embeddings read from an ``.npy`` file) -> the surrogate
(:mod:`.pipeline`) -> surrogate.csv (``frame,time,surrogate``), surrogate.json (method,
parameters, chosen component and every candidate, |Pearson r| against labels.csv's
``displacement`` column when there is one) and surrogate.png, each written atomically into the
folder the caller claims once the surrogate is computed; then the console summary's lines.
Pure: plain values in, no Hydra.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from fastap_lab import io
from fastap_lab.errors import ConfigError, DataError
from fastap_lab.evaluation.report import json_safe
from fastap_lab.respiration.pipeline import (
    SurrogateSettings,
    surrogate_from_embeddings,
    surrogate_from_frames,
)
from fastap_lab.respiration.plot import plot_surrogate
from fastap_lab.respiration.reference import read_reference
from fastap_lab.respiration.sequence import frame_keys, frame_times, load_frames
from fastap_lab.respiration.signal import pearson

MIN_CYCLES = 2.0
SIGN_CONVENTION = {
    None: "median below the mean (low = where the sequence dwells); not anatomical: may be inverted",
    "low_frame": "surrogate.low_frame at or below the median (given as end-exhale)",
}


def check_low_frame(settings: SurrogateSettings, num_frames: int) -> None:
    """Raise ConfigError unless ``surrogate.low_frame`` is None or a frame index."""
    low = settings.low_frame
    if low is not None and (isinstance(low, bool) or not isinstance(low, int)
                            or not 0 <= low < num_frames):  # fmt: skip
        raise ConfigError(
            f"surrogate.low_frame={low!r}: give a frame index 0..{num_frames - 1} (labels.csv row"
            " order) of a frame at end-exhale, or null"
        )


def load_embeddings(path: str, num_frames: int) -> torch.Tensor:
    """float64 [N, D] from an .npy file whose rows follow the frames (labels.csv order)."""
    file = Path(path).expanduser()
    try:
        array = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"embeddings={file}: cannot read it as a .npy array ({exc})") from exc
    if array.ndim != 2 or array.shape[0] != num_frames or not np.isfinite(array).all():
        raise DataError(
            f"embeddings={file}: shape {list(array.shape)}; need [{num_frames}, D] finite values,"
            " one row per frame in labels.csv order (e.g. <run>/inference/embeddings.npy)"
        )
    return torch.from_numpy(array.astype(np.float64))


def surrogate_csv(keys: list[str], times: np.ndarray, values: np.ndarray) -> str:
    """surrogate.csv text: frame, time and surrogate value per frame."""
    rows = ["frame,time,surrogate"]
    rows += [f"{k},{t:.6f},{v:.6f}" for k, t, v in zip(keys, times, values, strict=True)]
    return "\n".join(rows) + "\n"


def compute(settings: SurrogateSettings, frames, times: torch.Tensor, embeddings: str | None):
    """(Surrogate, method description); a constant sequence is one DataError line.

    ``embeddings``: an .npy file of per-frame embeddings to use instead of the images (None:
    the images).
    """
    try:
        if embeddings:
            rows = load_embeddings(embeddings, len(frames))
            result = surrogate_from_embeddings(rows, times, frames.groups, settings)
            return result, f"embeddings {embeddings} -> {settings.embedding} -> band choice"
        result = surrogate_from_frames(frames.images, times, frames.groups, settings)
    except DataError as exc:
        raise DataError(f"{frames.root}: {exc}; a surrogate needs a moving sequence") from exc
    steps = ["phase-correlation registration"] if settings.register else []
    steps += [f"log / bias-field removal / {settings.normalise}", settings.embedding, "band choice"]
    return result, "images: " + " -> ".join(steps)


def check_band(settings: SurrogateSettings, fps: float, notes: list) -> None:
    """Raise ConfigError when ``surrogate.band`` lies above the frames' Nyquist frequency."""
    nyquist = fps / 2
    if settings.band[0] >= nyquist:
        raise ConfigError(
            f"surrogate.band={list(settings.band)} Hz: frames at {fps:g}/s only show frequencies"
            f" up to {nyquist:g} Hz; check the time column / fps, or lower the band"
        )
    if settings.band[1] > nyquist:
        notes.append(f"surrogate.band reaches past {nyquist:g} Hz (half the frame rate)")


def record_of(frames, result, method, times_source, displacement, notes, seconds) -> dict:
    """surrogate.json: method, settings, the chosen component and every candidate's scores."""
    candidates = [
        {"component": k, "band_share": float(result.band_shares[k]),
         "smoothness": float(result.smoothness[k]), "score": float(result.scores[k]),
         "variance_share": None if result.variance_shares is None
         else float(result.variance_shares[k])}
        for k in range(result.scores.numel())
    ]  # fmt: skip
    r = None if displacement is None else pearson(result.values, torch.from_numpy(displacement))
    pinned = None if result.settings["low_frame"] is None else "low_frame"
    shifts = result.shifts
    return {
        "method": method, "parameters": result.settings, "data_root": str(frames.root),
        "num_frames": len(frames), "fps": result.fps, "time_source": times_source,
        "duration_s": result.duration, "breathing_cycles": result.cycles,
        "component": result.component, "band_share": result.band_share,
        "sign_convention": SIGN_CONVENTION[pinned], "candidates": candidates,
        "pearson_r": r, "abs_pearson_r": None if r is None else abs(r),
        "displacement_column": displacement is not None,
        "registration": None if shifts is None else {
            "max_abs_shift_px": float(shifts.abs().max()),
            "mean_abs_shift_px": float(shifts.abs().mean())},
        "frames_per_second_processed": len(frames) / max(seconds, 1e-9),
        "utc_time": datetime.now(UTC).isoformat(timespec="seconds"), "notes": notes,
    }  # fmt: skip


def run_surrogate(
    settings: SurrogateSettings, data: Mapping, *, fps=None, embeddings: str | None = None,
    output: Callable[[], Path],
) -> tuple[dict, Path]:  # fmt: skip
    """Compute the surrogate of a data config's frames and write its files.

    Args:
        settings: checked ``surrogate.*`` (:func:`.pipeline.checked_settings`).
        data: the data config (a plain dict).
        fps: ``fps=`` as given (None: labels.csv's ``time`` column or the source's times).
        embeddings: an .npy file of per-frame embeddings to use instead of the images.
        output: claims the output folder, called once the surrogate is computed (bad input
            leaves no folder behind).

    Returns:
        (surrogate.json's record, the folder written).
    """
    frames, labels_csv, is_video = load_frames(data)
    check_low_frame(settings, len(frames))
    reference = read_reference(labels_csv)
    notes = list(frames.notes)
    times, times_source = frame_times(frames, fps, reference.has_time, is_video, notes)
    if reference.displacement is not None and len(reference.displacement) != len(frames):
        raise DataError(f"{labels_csv}: {len(reference.displacement)} displacement rows for"
                        f" {len(frames)} frames; give one row per frame")  # fmt: skip
    started = time.perf_counter()
    result, method = compute(settings, frames, times, embeddings)
    seconds = time.perf_counter() - started
    check_band(settings, result.fps, notes)
    if result.cycles < MIN_CYCLES:
        notes.append(f"only ~{result.cycles:.1f} breathing cycles in {result.duration:.0f} s: the"
                     f" surrogate needs >= {MIN_CYCLES:g} to tell breathing from drift; use a"
                     " longer sequence")  # fmt: skip
    out = output()
    values, time_values = result.values.numpy(), times.numpy()
    io.write_text(out / "surrogate.csv",
                  surrogate_csv(frame_keys(frames, is_video), time_values, values))  # fmt: skip
    record = record_of(frames, result, method, times_source, reference.displacement, notes,
                       seconds)  # fmt: skip
    io.write_json(out / "surrogate.json", json_safe(record))
    title = f"{frames.root.name}: component {result.component}, band share {result.band_share:.2f}"
    if record["pearson_r"] is not None:
        title += f", r = {record['pearson_r']:+.3f} against displacement"
    plot_surrogate(out / "surrogate.png", time_values, values, reference.displacement, title)
    return record, out


def summary_lines(record: dict, out: Path) -> list[tuple[int, str]]:
    """The console summary of a surrogate run: (logging level, line) each, notes first."""
    lines = [(logging.WARNING, f"note: {note}") for note in record["notes"]]
    r = record["abs_pearson_r"]
    line = (
        f"surrogate of {int(record['num_frames'])} frames"
        f" ({record['frames_per_second_processed']:.1f} frames/s): component"
        f" {int(record['component'])}, band share {record['band_share']:.2f},"
        f" ~{record['breathing_cycles']:.0f} cycles"
    )
    if r is not None:
        line += f", |r| = {r:.4f} against displacement"
    lines.append((logging.INFO, line))
    lines.append((logging.INFO, f"outputs: {out}"))
    return lines
