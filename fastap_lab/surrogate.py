"""``python -m fastap_lab.surrogate data=… [out=DIR] [fps=…] [embeddings=FILE] [surrogate.*=…]``.

A respiratory surrogate from the images alone (:mod:`fastap_lab.respiration`), or from per-frame
embeddings (``embeddings=<run>/inference/embeddings.npy``). Writes into ``out`` (``out-2``, … when
it exists) or Hydra's new run folder ``outputs/surrogate/<time>/``, every file atomically:
surrogate.csv (``frame,time,surrogate``, one row per frame in labels.csv order), surrogate.json
(method, parameters, chosen component, |Pearson r| against labels.csv's ``displacement`` column
when there is one), surrogate.png.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from fastap_lab import io
from fastap_lab.cli import run_task
from fastap_lab.data.sources import is_indexed, load_source_config
from fastap_lab.errors import ConfigError, DataError
from fastap_lab.evaluation.report import claim_output_dir, json_safe
from fastap_lab.respiration.normalize import METHODS
from fastap_lab.respiration.pipeline import (
    EMBEDDINGS,
    SurrogateSettings,
    surrogate_from_embeddings,
    surrogate_from_frames,
)
from fastap_lab.respiration.plot import plot_surrogate
from fastap_lab.respiration.reference import read_reference
from fastap_lab.respiration.signal import pearson

log = logging.getLogger(__name__)
MIN_CYCLES = 2.0
SIGN_CONVENTION = {
    None: "median below the mean (low = where the sequence dwells); not anatomical: may be inverted",
    "low_frame": "surrogate.low_frame at or below the median (given as end-exhale)",
}


def settings_from(cfg: DictConfig) -> SurrogateSettings:
    """``cfg.surrogate`` as SurrogateSettings; an out-of-range value is one ConfigError line."""
    values = OmegaConf.to_container(cfg.surrogate, resolve=True)
    band = values.get("band")
    if not (isinstance(band, list) and len(band) == 2 and 0 < band[0] < band[1]):
        raise ConfigError(f"surrogate.band={band}: give [low, high] in Hz, 0 < low < high")
    checks = {
        "normalise": (values["normalise"] in METHODS, f"choose one of {list(METHODS)}"),
        "embedding": (values["embedding"] in EMBEDDINGS, f"choose one of {list(EMBEDDINGS)}"),
        "components": (values["components"] >= 1, "must be >= 1"),
        "neighbours": (values["neighbours"] >= 1, "must be >= 1"),
        "registration_passes": (values["registration_passes"] >= 1, "must be >= 1"),
    }
    for name in ("bias_sigma", "smooth_sigma", "smooth_seconds"):
        checks[name] = (values[name] >= 0, "must be >= 0 (0 switches it off)")
    for name, (ok, fix) in checks.items():
        if not ok:
            raise ConfigError(f"surrogate.{name}={values[name]!r}: {fix}")
    return SurrogateSettings(**values)


def check_low_frame(settings: SurrogateSettings, num_frames: int) -> None:
    """Raise ConfigError unless ``surrogate.low_frame`` is None or a frame index."""
    low = settings.low_frame
    if low is not None and (isinstance(low, bool) or not isinstance(low, int)
                            or not 0 <= low < num_frames):  # fmt: skip
        raise ConfigError(
            f"surrogate.low_frame={low!r}: give a frame index 0..{num_frames - 1} (labels.csv row"
            " order) of a frame at end-exhale, or null"
        )


def load_frames(cfg: DictConfig):
    """Load the frames of ``cfg.data``.

    (FrameSet, path of its labels CSV or None, whether its frames are addressed by index:
    a video, a DICOM / NIfTI sequence).
    """
    data = OmegaConf.to_container(cfg.data, resolve=True)
    frames = load_source_config(data)
    if is_indexed(data):
        csv = data.get("labels_csv")
        return frames, None if csv is None else Path(csv).expanduser(), True
    return frames, frames.root / "labels.csv", False


def frame_times(cfg: DictConfig, frames, has_time: bool, is_video: bool, notes: list) -> tuple:
    """(times float64 [N] in seconds, where they come from)."""
    fps = cfg.get("fps")
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


def frame_keys(frames, is_video: bool) -> list[str]:
    """The ``frame`` value of each row as in labels.csv (a video's 0-based frame index)."""
    return [name.rsplit("#", 1)[-1] for name in frames.names] if is_video else list(frames.names)


def surrogate_csv(keys: list[str], times: np.ndarray, values: np.ndarray) -> str:
    """surrogate.csv text: frame, time and surrogate value per frame."""
    rows = ["frame,time,surrogate"]
    rows += [f"{k},{t:.6f},{v:.6f}" for k, t, v in zip(keys, times, values, strict=True)]
    return "\n".join(rows) + "\n"


def output_dir(cfg: DictConfig) -> Path:
    """``out`` (or ``out-2``, … when it exists), else Hydra's new run folder."""
    if cfg.get("out"):
        return claim_output_dir(Path(cfg.out).expanduser())
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def compute(cfg: DictConfig, settings: SurrogateSettings, frames, times: torch.Tensor):
    """(Surrogate, method description); a constant sequence is one DataError line."""
    try:
        if cfg.get("embeddings"):
            embeddings = load_embeddings(cfg.embeddings, len(frames))
            result = surrogate_from_embeddings(embeddings, times, frames.groups, settings)
            return result, f"embeddings {cfg.embeddings} -> {settings.embedding} -> band choice"
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


def record_of(cfg, frames, result, method, times_source, displacement, notes, seconds) -> dict:
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


def surrogate(cfg: DictConfig) -> dict:
    """Run the surrogate described by ``cfg`` (conf/surrogate.yaml); returns surrogate.json."""
    settings = settings_from(cfg)
    frames, labels_csv, is_video = load_frames(cfg)
    check_low_frame(settings, len(frames))
    reference = read_reference(labels_csv)
    notes = list(frames.notes)
    times, times_source = frame_times(cfg, frames, reference.has_time, is_video, notes)
    if reference.displacement is not None and len(reference.displacement) != len(frames):
        raise DataError(f"{labels_csv}: {len(reference.displacement)} displacement rows for"
                        f" {len(frames)} frames; give one row per frame")  # fmt: skip
    started = time.perf_counter()
    result, method = compute(cfg, settings, frames, times)
    seconds = time.perf_counter() - started
    check_band(settings, result.fps, notes)
    if result.cycles < MIN_CYCLES:
        notes.append(f"only ~{result.cycles:.1f} breathing cycles in {result.duration:.0f} s: the"
                     f" surrogate needs >= {MIN_CYCLES:g} to tell breathing from drift; use a"
                     " longer sequence")  # fmt: skip
    out = output_dir(cfg)
    values, time_values = result.values.numpy(), times.numpy()
    io.write_text(out / "surrogate.csv",
                  surrogate_csv(frame_keys(frames, is_video), time_values, values))  # fmt: skip
    record = record_of(cfg, frames, result, method, times_source, reference.displacement, notes,
                       seconds)  # fmt: skip
    io.write_json(out / "surrogate.json", json_safe(record))
    title = f"{frames.root.name}: component {result.component}, band share {result.band_share:.2f}"
    if record["pearson_r"] is not None:
        title += f", r = {record['pearson_r']:+.3f} against displacement"
    plot_surrogate(out / "surrogate.png", time_values, values, reference.displacement, title)
    _log_summary(record, out)
    return record


def _log_summary(record: dict, out: Path) -> None:
    for note in record["notes"]:
        log.warning("note: %s", note)
    r = record["abs_pearson_r"]
    log.info(
        "surrogate of %d frames (%.1f frames/s): component %d, band share %.2f, ~%.0f cycles%s",
        record["num_frames"], record["frames_per_second_processed"], record["component"],
        record["band_share"], record["breathing_cycles"],
        "" if r is None else f", |r| = {r:.4f} against displacement",
    )  # fmt: skip
    log.info("outputs: %s", out)


@hydra.main(version_base="1.3", config_path="../conf", config_name="surrogate")
def main(cfg: DictConfig) -> dict:
    """Entry point (Hydra): run :func:`surrogate`, user errors as one ``error:`` line."""
    return run_task(surrogate, cfg)


if __name__ == "__main__":
    main()
