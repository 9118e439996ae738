"""Read a DICOM sequence (pydicom): a multi-frame cine, or single-frame files of one series.

Which files: :mod:`fastap_lab.data.dicom_series`. Pixels: pydicom's ``pixel_array`` (color
YBR is converted to RGB, PALETTE COLOR through its palette); a compressed transfer syntax
needs its decoder installed (one line names the package). Then, for gray images:

1. the Modality LUT (RescaleSlope / RescaleIntercept, or a Modality LUT Sequence);
2. the window of ``data.window`` (:mod:`fastap_lab.data.intensity`): the file's
   WindowCenter / WindowWidth (the first when it lists several), else the 0.5..99.5 percentile
   range of the whole sequence, to uint8;
3. MONOCHROME1 (low values bright) inverted, so bright is always high.

RGB is kept (16-bit RGB scaled by ``255 / (2**BitsStored - 1)``). Every frame is then made
``channels`` x ``image_size`` x ``image_size`` with the rules of :mod:`fastap_lab.data.frames`.

Time in seconds: a multi-frame file's FrameTimeVector (increments in ms, cumulated) or FrameTime
(ms per frame); single-frame files' AcquisitionTime / ContentTime / TriggerTime when they
increase in sequence order; else frame index / ``data.fps``; else the frame index (a note).
Labels: a CSV as for ``data=video`` (:mod:`fastap_lab.data.indexed`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastap_lab.data.decode import check_decode_settings
from fastap_lab.data.dicom_series import seconds_of_day, series_datasets
from fastap_lab.data.frames import FrameSet
from fastap_lab.data.indexed import check_fps, indexed_frameset, read_index_labels, sequence_times
from fastap_lab.data.intensity import check_window, resize_frames, to_uint8, window_range
from fastap_lab.errors import DataError

_DECODE_ERRORS = (RuntimeError, ValueError, NotImplementedError, AttributeError, OSError, TypeError,
                  KeyError, IndexError, EOFError)  # fmt: skip


def require_pydicom() -> None:
    """Raise one DataError line naming what to install when pydicom is not installed."""
    try:
        import pydicom  # noqa: F401
    except ImportError as error:
        raise DataError(
            "data=dicom needs pydicom, which is not installed: pip install pydicom"
            " (or pip install -e '.[medical]')"
        ) from error


def _missing_decoder(dataset) -> DataError | None:
    """The DataError for compressed pixel data that no installed decoder reads, or None.

    One line naming the compressed transfer syntax and what to install, when no decoder
    for it is available; None when the pixel data can be decoded.
    """
    from pydicom.pixels import get_decoder

    syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or not syntax.is_compressed:
        return None
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        return DataError(f"{dataset.filename}: pixel data compressed as {syntax.name} ({syntax}),"
                         " which pydicom cannot decode; convert the file, e.g. `gdcmconv --raw`")  # fmt: skip
    if decoder.is_available:
        return None
    # pydicom lists "plugin - requires a>=1 and b>=2": the packages of the first plugin.
    wanted = next((m for m in decoder.missing_dependencies if m.startswith("pylibjpeg")),
                  decoder.missing_dependencies[0])  # fmt: skip
    packages = " ".join(f'"{p.strip()}"' for p in wanted.split("requires", 1)[-1].split(" and "))
    return DataError(
        f"{dataset.filename}: pixel data compressed as {syntax.name} ({syntax}) and no decoder"
        f" for it is installed; pip install {packages} (or gdcm), or convert the file to"
        " uncompressed DICOM"
    )


def _frames_of(dataset) -> list[np.ndarray]:
    """The frames of one dataset: gray [H, W] (after the Modality LUT) or RGB [H, W, 3]."""
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    if error := _missing_decoder(dataset):
        raise error
    try:
        array = dataset.pixel_array
        photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2"))
        if photometric == "PALETTE COLOR":
            array = apply_color_lut(array, dataset)
        elif array.ndim == 2 or (array.ndim == 3 and dataset.get("SamplesPerPixel", 1) == 1):
            array = apply_modality_lut(array, dataset).astype(np.float32)
    except _DECODE_ERRORS as error:
        raise DataError(f"{dataset.filename}: cannot decode its pixel data ({error}); export it"
                        " again as uncompressed DICOM") from error  # fmt: skip
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    return list(array) if frames > 1 else [array]


def _file_window(dataset, notes: list[str]) -> tuple[float, float] | None:
    """(center, width) of the file's first VOI window, or None."""
    center, width = dataset.get("WindowCenter"), dataset.get("WindowWidth")
    if center is None or width is None:
        return None
    centers = (
        list(center) if hasattr(center, "__len__") and not isinstance(center, str) else [center]
    )
    widths = list(width) if hasattr(width, "__len__") and not isinstance(width, str) else [width]
    if len(centers) > 1:
        notes.append(f"the file lists {len(centers)} display windows; the first is used")
    if not centers or not widths or float(widths[0]) < 1:
        return None
    return float(centers[0]), float(widths[0])


def _multiframe_times(dataset, count: int) -> tuple[np.ndarray | None, str]:
    name = Path(str(dataset.filename)).name
    vector = dataset.get("FrameTimeVector")
    if vector is not None and len(vector) == count:
        return np.cumsum(np.asarray(vector, dtype=np.float64)) / 1000.0, "FrameTimeVector (ms)"
    frame_time = dataset.get("FrameTime")
    if frame_time is not None and float(frame_time) > 0:
        step = float(frame_time) / 1000.0
        return np.arange(count) * step, f"FrameTime {float(frame_time):g} ms"
    return None, f"{name} has no FrameTime or FrameTimeVector"


def _series_times(datasets: list) -> tuple[np.ndarray | None, str]:
    """Times of single-frame files in sequence order, from the first stamp that increases."""
    for keyword, to_seconds in (("AcquisitionTime", seconds_of_day),
                                ("ContentTime", seconds_of_day),
                                ("TriggerTime", lambda v: None if v is None else float(v) / 1000)):  # fmt: skip
        stamps = [to_seconds(d.get(keyword)) for d in datasets]
        if None not in stamps and all(b > a for a, b in zip(stamps, stamps[1:], strict=False)):
            return np.asarray(stamps) - stamps[0], f"{keyword} of each file, from the first"
    return None, "AcquisitionTime / ContentTime / TriggerTime do not increase along the files"


def _rgb_to_uint8(frame: np.ndarray, dataset) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame
    top = 2 ** int(dataset.get("BitsStored", 16)) - 1
    return np.rint(np.clip(frame.astype(np.float64) * 255.0 / top, 0, 255)).astype(np.uint8)


def load_dicom(
    path: str | Path, labels_csv: str | Path | None = None, *, series: str | None = None,
    window="auto", fps: float | None = None, channels: int = 1, image_size: int = 64,
    require_labels: bool = True,
) -> FrameSet:  # fmt: skip
    """The frames of the DICOM file / folder / DICOMDIR ``path`` (module docstring).

    Returns a FrameSet with uint8 images [N, channels, image_size, image_size], names
    ``f"{path.name}#{index}"``, times in seconds and notes on every assumption.
    """
    check_decode_settings(channels, image_size)
    window, fps = check_window(window), check_fps(fps)
    require_pydicom()
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"data.path={path} does not exist; give a DICOM file, a folder of one"
                        " series, or a DICOMDIR")  # fmt: skip
    table = read_index_labels(path, labels_csv, require_labels)
    notes: list[str] = []
    datasets = series_datasets(path, None if series is None else str(series), notes)
    per_file = [_frames_of(d) for d in datasets]
    frames = [f for file_frames in per_file for f in file_frames]
    owner = [d for d, file_frames in zip(datasets, per_file, strict=True) for _ in file_frames]
    if len(datasets) == 1:
        file_times, source = _multiframe_times(datasets[0], len(frames))
    else:
        file_times, source = _series_times(datasets)
    times = sequence_times(len(frames), file_times, source, fps, notes)
    if all(f.ndim == 3 for f in frames):
        notes.append("RGB frames kept as stored (no window)")
        scaled = [_rgb_to_uint8(f, d) for f, d in zip(frames, owner, strict=True)]
    elif any(f.ndim == 3 for f in frames):
        raise DataError(f"{path}: the series mixes gray and color images; give one kind")
    else:
        low, high, note = window_range(window, _file_window(datasets[0], notes), frames, str(path))
        invert = str(datasets[0].get("PhotometricInterpretation")) == "MONOCHROME1"
        notes.append(note + ("; MONOCHROME1 inverted (low values bright)" if invert else ""))
        scaled = [to_uint8(f, low, high, invert) for f in frames]
    images, resize_notes = resize_frames(scaled, channels, image_size)
    return indexed_frameset(path, images, times, table, notes + resize_notes)
