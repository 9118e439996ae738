"""Which DICOM files make the sequence: one file, a folder of one series, or a DICOMDIR.

* a file: itself (a multi-frame cine, or one frame);
* a folder: every DICOM file under it (recursively); files that are not DICOM, or hold no pixel
  data (a DICOMDIR, a report), are skipped with a note; the files must be of one series, or
  ``data.series=UID`` picks one;
* a DICOMDIR (the file, or a folder holding one): the series it lists; several need
  ``data.series=UID``.

Single-frame files are ordered by InstanceNumber, else by AcquisitionTime / ContentTime, else by
file name (each with a note). Headers are read with the pixel data deferred (read on decoding).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fastap_lab.data.decode import count_noun
from fastap_lab.data.frames import natural_key
from fastap_lab.errors import ConfigError, DataError

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
_DEFER = 1024  # bytes: larger values (the pixel data) are read only when used
_SHOWN = 8  # series listed in a message


def read_header(path: Path):
    """The dataset of ``path`` with large values deferred; one line when it is not DICOM."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        return dcmread(path, defer_size=_DEFER)
    except InvalidDicomError as error:
        raise DataError(
            f"{path}: not a DICOM file (no DICOM header / 'DICM' marker); give a DICOM file or"
            " folder with data=dicom, or use data=nifti for .nii / .nii.gz"
        ) from error
    except (OSError, ValueError, EOFError, KeyError, TypeError) as error:
        raise DataError(
            f"{path}: cannot read this DICOM file ({error}); export it again"
        ) from error


def _is_dicomdir(dataset) -> bool:
    meta = getattr(dataset, "file_meta", None)
    return str(getattr(meta, "MediaStorageSOPClassUID", "")) == DICOMDIR_CLASS


def _has_pixels(dataset) -> bool:
    return any(tag in dataset for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))


def no_pixels(path: Path, dataset) -> DataError:
    """The one-line DataError for ``path``, a DICOM file without pixel data (its SOP class)."""
    kind = getattr(dataset.get("SOPClassUID"), "name", None) or "unknown SOP class"
    return DataError(
        f"{path}: no pixel data ({kind}); not an image: give an image file or series"
        " (e.g. MR / CT / US / XA)"
    )


def series_datasets(path: Path, series: str | None, notes: list[str]) -> list:
    """The datasets of the sequence at ``path`` (see the module docstring), in order."""
    if path.is_dir():
        if (path / "DICOMDIR").is_file():
            return _from_dicomdir(path / "DICOMDIR", read_header(path / "DICOMDIR"), series, notes)
        return _from_folder(path, series, notes)
    dataset = read_header(path)
    if _is_dicomdir(dataset):
        return _from_dicomdir(path, dataset, series, notes)
    if not _has_pixels(dataset):
        raise no_pixels(path, dataset)
    if series is not None and str(dataset.get("SeriesInstanceUID")) != str(series):
        raise ConfigError(
            f"data.series={series}: {path.name} is of series {dataset.get('SeriesInstanceUID')};"
            " drop data.series or give that UID"
        )
    return [dataset]


def _from_folder(folder: Path, series: str | None, notes: list[str]) -> list:
    files = sorted((p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: natural_key(p.relative_to(folder).as_posix()))  # fmt: skip
    datasets, skipped, empty = [], [], []
    for file in files:
        try:
            dataset = read_header(file)
        except DataError:
            skipped.append(file.name)
            continue
        (datasets if _has_pixels(dataset) else empty).append(dataset)
    if skipped:
        notes.append(f"skipped {count_noun(len(skipped), 'file')} that are not DICOM"
                     f" (e.g. {', '.join(skipped[:3])})")  # fmt: skip
    if empty:
        notes.append(f"skipped {count_noun(len(empty), 'DICOM file')} without pixel data")
    if not datasets:
        found = f"{len(files)} files, none a DICOM image" if files else "no files"
        raise DataError(f"{folder}: no DICOM image found ({found}); give a folder of one series")
    return order_instances(pick_series(datasets, series, str(folder), "the folder"), notes)


def _from_dicomdir(path: Path, dataset, series: str | None, notes: list[str]) -> list:
    from pydicom.fileset import FileSet

    try:
        fileset = FileSet(dataset)
    except (ValueError, KeyError, AttributeError, NotImplementedError) as error:
        raise DataError(f"{path}: cannot read this DICOMDIR ({error}); give the series folder"
                        " with data.path= instead") from error  # fmt: skip
    files = [Path(instance.path) for instance in fileset]
    datasets = [d for d in (read_header(f) for f in files if f.is_file()) if _has_pixels(d)]
    if not datasets:
        raise DataError(f"{path}: the DICOMDIR lists no image file; give an image series")
    notes.append(f"read through the DICOMDIR {path}")
    return order_instances(pick_series(datasets, series, str(path), "the DICOMDIR"), notes)


def pick_series(datasets: list, series: str | None, where: str, what: str) -> list:
    """Select the datasets of one series.

    The datasets of one series: the only one, or ``data.series``; else one line listing
    the series UIDs with their file counts.
    """
    counts = Counter(str(d.get("SeriesInstanceUID", "?")) for d in datasets)
    shown = ", ".join(f"{uid} ({count_noun(n, 'file')}"
                      f"{_description(datasets, uid)})" for uid, n in list(counts.items())[:_SHOWN])  # fmt: skip
    more = f" and {len(counts) - _SHOWN} more" if len(counts) > _SHOWN else ""
    if series is None:
        if len(counts) == 1:
            return datasets
        raise DataError(
            f"{where}: {what} holds {len(counts)} series (mixed series); pick one with"
            f" data.series=UID: {shown}{more}"
        )
    if str(series) not in counts:
        raise ConfigError(f"data.series={series}: not in {where}; its series: {shown}{more}")
    return [d for d in datasets if str(d.get("SeriesInstanceUID", "?")) == str(series)]


def _description(datasets: list, uid: str) -> str:
    first = next(d for d in datasets if str(d.get("SeriesInstanceUID", "?")) == uid)
    words = [str(first.get(k)) for k in ("Modality", "SeriesDescription") if first.get(k)]
    return f", {' '.join(words)}" if words else ""


def order_instances(datasets: list, notes: list[str]) -> list:
    """Order the single-frame files of a series (a note says by what).

    Single-frame files in order: InstanceNumber (all present, all different), else
    AcquisitionTime / ContentTime (all present), else file name.
    """
    if len(datasets) == 1:
        return datasets
    frames = [int(d.get("NumberOfFrames", 1) or 1) for d in datasets]
    if max(frames) > 1:
        raise DataError(
            f"{datasets[0].filename}: the series has {len(datasets)} files and some are"
            " multi-frame; give one multi-frame file with data.path=FILE"
        )
    numbers = [d.get("InstanceNumber") for d in datasets]
    if None not in numbers and len(set(numbers)) == len(numbers):
        notes.append(f"{len(datasets)} single-frame files ordered by InstanceNumber")
        return [d for _, d in sorted(zip(numbers, datasets, strict=True), key=lambda p: int(p[0]))]
    for keyword in ("AcquisitionTime", "ContentTime"):
        stamps = [seconds_of_day(d.get(keyword)) for d in datasets]
        if None not in stamps:
            notes.append(f"{len(datasets)} single-frame files ordered by {keyword}"
                         " (InstanceNumber missing or repeated)")  # fmt: skip
            order = sorted(range(len(datasets)), key=lambda i: stamps[i])
            return [datasets[i] for i in order]
    notes.append(f"{len(datasets)} single-frame files ordered by file name (no InstanceNumber"
                 " or acquisition / content time)")  # fmt: skip
    return sorted(datasets, key=lambda d: natural_key(str(d.filename)))


def seconds_of_day(value) -> float | None:
    """A DICOM TM value (HHMMSS.FFFFFF, parts optional) in seconds, or None."""
    text = str(value or "").strip().replace(":", "")
    try:
        hours = int(text[0:2])
        minutes = int(text[2:4]) if len(text) >= 4 else 0
        seconds = float(text[4:]) if len(text) > 4 else 0.0
    except ValueError:
        return None
    return hours * 3600 + minutes * 60 + seconds
