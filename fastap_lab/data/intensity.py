"""Intensity of medical sequences (DICOM, NIfTI): raw values -> uint8, one rule for all frames.

``data.window`` chooses the mapping of gray values (after the DICOM Modality LUT, or NIfTI's
scaling) to 0..255:

* ``auto``: the file's display window (DICOM WindowCenter / WindowWidth, NIfTI cal_min /
  cal_max) when it has one, else ``percentile``;
* ``file``: the file's window; an error when it has none;
* ``percentile``: the 0.5 .. 99.5 percentile range of the *whole sequence*;
* ``minmax``: the minimum .. maximum of the whole sequence;
* ``[center, width]``: this window (DICOM's linear VOI function).

The range is computed once for the sequence, not per frame, so brightness stays comparable
across frames (unlike the per-image rule of 16-bit PNGs in :mod:`fastap_lab.data.frames`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from fastap_lab.data.decode import SourceInfo, source_notes, to_channels_and_size
from fastap_lab.errors import ConfigError, DataError

WINDOWS = ("auto", "file", "percentile", "minmax")
PERCENTILES = (0.5, 99.5)
_SAMPLE = 4_000_000  # values the percentiles are computed from (a regular subsample beyond)


def check_window(window) -> str | tuple[float, float]:
    """``data.window`` as one of :data:`WINDOWS` or (center, width); else one ConfigError line."""
    if window is None:
        return "auto"
    if isinstance(window, str) and window in WINDOWS:
        return window
    if isinstance(window, Sequence) and not isinstance(window, str) and len(window) == 2:
        try:
            center, width = float(window[0]), float(window[1])
        except (TypeError, ValueError):
            center, width = math.nan, math.nan
        if math.isfinite(center) and math.isfinite(width) and width >= 1:
            return center, width
    raise ConfigError(
        f"data.window={window!r}: choose one of {list(WINDOWS)} or give [center, width] with"
        " width >= 1, e.g. data.window=[40,400]"
    )


def _sample(frames: list[np.ndarray]) -> np.ndarray:
    values = np.concatenate([f.reshape(-1) for f in frames])
    values = values[np.isfinite(values)]
    step = max(1, values.size // _SAMPLE)  # deterministic: same range on every run
    return values[::step]


def window_range(
    window, file_window: tuple[float, float] | None, frames: list[np.ndarray], where: str
) -> tuple[float, float, str]:
    """(low, high, note): values <= low become 0, >= high 255, linear in between.

    Args:
        window: a checked ``data.window`` (:func:`check_window`).
        file_window: the file's (center, width), or None.
        frames: float gray frames [H, W] of the whole sequence.
        where: the file / folder, for messages.
    """
    if window == "file" and file_window is None:
        raise DataError(
            f"{where}: data.window=file but the file has no display window; use"
            " data.window=auto (or percentile / minmax / [center,width])"
        )
    if isinstance(window, tuple) or (window in ("auto", "file") and file_window is not None):
        center, width = window if isinstance(window, tuple) else file_window
        # DICOM's linear VOI function: (x - (c - 0.5)) / (w - 1) + 0.5 spans 0..1.
        low = center - 0.5 - (width - 1) / 2
        source = "data.window" if isinstance(window, tuple) else "the file's window"
        note = f"center={center:g} width={width:g} ({source})"
        return low, low + width - 1, f"intensity: {note}, the same for every frame"
    values = _sample(frames)
    if values.size == 0:
        raise DataError(f"{where}: no finite pixel value in the sequence; nothing to show")
    if window == "minmax":
        low, high, rule = float(values.min()), float(values.max()), "minimum..maximum"
    else:
        low, high = (float(v) for v in np.percentile(values, PERCENTILES))
        rule = f"{PERCENTILES[0]:g}..{PERCENTILES[1]:g} percentile range"
    if high <= low:  # a flat sequence: every frame black rather than a division by zero
        high = low + 1.0
    return (
        low,
        high,
        (
            f"intensity: {rule} of the whole sequence ({low:g}..{high:g}) mapped to 0..255, one"
            " range for all frames so brightness is comparable across frames"
        ),
    )


def to_uint8(frame: np.ndarray, low: float, high: float, invert: bool = False) -> np.ndarray:
    """Map a gray frame to uint8 with the range ``low`` .. ``high``.

    uint8 [H, W]: ``round(255 * clip((x - low) / (high - low), 0, 1))``, inverted
    (255 - y) for MONOCHROME1, where low values are bright. Not-a-number becomes 0.
    """
    scaled = np.clip((frame.astype(np.float64) - low) / (high - low), 0.0, 1.0)
    out = np.rint(np.nan_to_num(scaled, nan=0.0) * 255.0).astype(np.uint8)
    return 255 - out if invert else out


def resize_frames(
    frames: list[np.ndarray], channels: int, image_size: int
) -> tuple[np.ndarray, list[str]]:
    """Resize uint8 frames to ``channels`` x ``image_size`` x ``image_size``, with notes.

    uint8 [N, C, S, S] from uint8 frames [H, W] or [H, W, 3], with the resizing rules of
    :func:`fastap_lab.data.decode.to_channels_and_size`, and its notes.
    """
    out = np.empty((len(frames), channels, image_size, image_size), dtype=np.uint8)
    infos = []
    for i, frame in enumerate(frames):
        image = Image.fromarray(np.ascontiguousarray(frame), "L" if frame.ndim == 2 else "RGB")
        out[i] = to_channels_and_size(image, channels, image_size)
        infos.append(SourceInfo(image.mode, image.size))
    return out, source_notes(infos, channels=channels, image_size=image_size)
