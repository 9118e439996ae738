"""Read a NIfTI sequence (nibabel): 2-D + t, or one slice of 3-D + t.

Shapes (voxel axes x, y, z, t; trailing axes of length 1 beyond the fourth are dropped):

* (X, Y, T) or (X, Y, 1, T): 2-D + t, every time point a frame;
* (X, Y, Z, T) with Z > 1: 3-D + t; ``data.slice=K`` (0 <= K < Z) picks the z index;
* anything else is one line naming the shape.

Values are the header-scaled floats (scl_slope / scl_inter); the window of ``data.window``
(:mod:`fastap_lab.data.intensity`): ``auto`` is the header's cal_min..cal_max when set, else the
0.5..99.5 percentile range of the whole sequence, one range for all frames. Frames are shown as
viewers show a slice with the origin at the lower left: rows run along y from high to low,
columns along x (``frame = flipud(volume[:, :, z, t].T)``); the affine is not applied.

Time in seconds: the fourth zoom (pixdim[4]) in the header's time unit (sec, msec, usec; an
unknown unit is taken as seconds, with a note); for (X, Y, T) files, or without a time step,
frame index / ``data.fps``; else the frame index (a note). Labels: a CSV as for ``data=video``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fastap_lab.data.decode import check_decode_settings
from fastap_lab.data.frames import FrameSet
from fastap_lab.data.indexed import check_fps, indexed_frameset, read_index_labels, sequence_times
from fastap_lab.data.intensity import check_window, resize_frames, to_uint8, window_range
from fastap_lab.errors import ConfigError, DataError

_TIME_UNITS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


def _nibabel():
    try:
        import nibabel
    except ImportError as error:
        raise DataError(
            "data=nifti needs nibabel, which is not installed: pip install nibabel"
            " (or pip install -e '.[medical]')"
        ) from error
    return nibabel


def _open(path: Path):
    nibabel = _nibabel()
    try:
        return nibabel.load(str(path))
    except (nibabel.filebasedimages.ImageFileError, OSError, ValueError, EOFError) as error:
        raise DataError(
            f"{path}: not a NIfTI file nibabel can read ({' '.join(str(error).split())[:160]});"
            " give a .nii / .nii.gz file, or use data=dicom for DICOM"
        ) from error


def _sequence_shape(path: Path, shape: tuple[int, ...], slice_index) -> tuple[tuple, int | None]:
    """(index into the image that gives [X, Y, T], the z index used or None)."""
    dims = list(shape)
    while len(dims) > 4 and dims[-1] == 1:
        dims.pop()
    if len(dims) == 3:
        return (slice(None), slice(None), slice(None)), None
    if len(dims) == 4 and dims[2] == 1:
        return (slice(None), slice(None), 0, slice(None)), None
    if len(dims) != 4:
        raise DataError(
            f"{path}: shape {tuple(shape)} is not a sequence; data=nifti reads 2-D + t"
            " (X, Y, T) / (X, Y, 1, T) or 3-D + t (X, Y, Z, T) with data.slice="
        )
    depth = dims[2]
    if slice_index is None:
        raise ConfigError(
            f"{path}: 3-D + t (shape {tuple(shape)}); pick the z slice with data.slice=K,"
            f" K in 0..{depth - 1}"
        )
    if isinstance(slice_index, bool) or not isinstance(slice_index, int):
        raise ConfigError(f"data.slice={slice_index!r}: give a z index, 0..{depth - 1}")
    if not 0 <= slice_index < depth:
        raise ConfigError(
            f"data.slice={slice_index}: out of range for {path.name} ({depth} slices);"
            f" give 0..{depth - 1}"
        )
    return (slice(None), slice(None), slice_index, slice(None)), slice_index


def _header_step(image, four_d: bool) -> tuple[float | None, str]:
    """(seconds between frames from the header or None, where that comes from / why not)."""
    header = image.header
    zooms = header.get_zooms()
    step = float(zooms[3]) if four_d and len(zooms) > 3 else math.nan
    if not math.isfinite(step) or step <= 0:
        why = "a 3-D file: its third axis is time" if not four_d else "no time step in the header"
        return None, f"{why}"
    unit = header.get_xyzt_units()[1] if hasattr(header, "get_xyzt_units") else "unknown"
    if unit in _TIME_UNITS:
        return step * _TIME_UNITS[unit], f"header time step {step:g} {unit}"
    return step, f"header time step {step:g} with time unit '{unit}', taken as seconds"


def _cal_window(image) -> tuple[float, float] | None:
    """The header's display range cal_min..cal_max as (center, width), or None."""
    header = image.header
    try:
        low, high = float(header["cal_min"]), float(header["cal_max"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (math.isfinite(low) and math.isfinite(high)) or high - low < 1:
        return None  # width >= 1 as DICOM's window; unset cal_min / cal_max are 0, 0
    width = high - low + 1  # so that the linear window spans low..high exactly
    return low + 0.5 + (width - 1) / 2, width


def load_nifti(
    path: str | Path, labels_csv: str | Path | None = None, *, slice_index: int | None = None,
    window="auto", fps: float | None = None, channels: int = 1, image_size: int = 64,
    require_labels: bool = True,
) -> FrameSet:  # fmt: skip
    """The frames of the NIfTI file ``path`` (module docstring).

    Returns a FrameSet with uint8 images [T, channels, image_size, image_size], names
    ``f"{path.name}#{t}"``, times in seconds and notes on every assumption.
    """
    check_decode_settings(channels, image_size)
    window, fps = check_window(window), check_fps(fps)
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise DataError(f"data.path={path} {what}; give a NIfTI file (.nii / .nii.gz)")
    table = read_index_labels(path, labels_csv, require_labels)
    image = _open(path)
    index, z = _sequence_shape(path, image.shape, slice_index)
    try:
        volume = np.asarray(image.dataobj[index], dtype=np.float32)  # [X, Y, T]
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: cannot read its voxels ({error}); export it again") from error
    notes = [f"slice z={z} of {image.shape[2]}"] if z is not None else []
    frames = [np.flipud(volume[:, :, t].T) for t in range(volume.shape[2])]
    step, source = _header_step(image, len(index) == 4)
    file_times = None if step is None else np.arange(len(frames)) * step
    times = sequence_times(len(frames), file_times, source, fps, notes)
    low, high, note = window_range(window, _cal_window(image), frames, str(path))
    notes.append(note.replace("the file's window", "the header's cal_min..cal_max"))
    images, resize_notes = resize_frames([to_uint8(f, low, high) for f in frames], channels,
                                         image_size)  # fmt: skip
    return indexed_frameset(path, images, times, table, notes + resize_notes)
