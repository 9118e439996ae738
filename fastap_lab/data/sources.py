"""Where frames come from.

A folder, a video file, a DICOM / NIfTI sequence, or the embedded phantom (generated, cached).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fastap_lab.errors import ConfigError, DataError


def phantom_root(phantom: Mapping, cache_dir: str | Path) -> Path:
    """Generate (once) and return the cached phantom folder for these parameters."""
    from fastap_lab.data.phantom import ensure_phantom
    from fastap_lab.data.phantom_spec import PhantomSpec

    fields = dict(phantom)
    if "hold_seconds" in fields:
        fields["hold_seconds"] = tuple(fields["hold_seconds"])
    unknown = set(fields) - set(PhantomSpec.__dataclass_fields__)
    if unknown:
        raise ConfigError(
            f"data.phantom: unknown field(s) {sorted(unknown)}; known: "
            f"{sorted(PhantomSpec.__dataclass_fields__)}"
        )
    return ensure_phantom(usable_cache_dir(cache_dir), PhantomSpec(**fields))


def usable_cache_dir(cache_dir: str | Path) -> Path:
    """``cache_dir``, created if needed; a file there or an unwritable parent: one line."""
    folder = Path(cache_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = "a file, not a folder" if folder.exists() else exc.strerror
        raise DataError(
            f"paths.cache_dir={folder} (FASTAP_LAB_CACHE): cannot be the cache folder of the"
            f" generated phantom ({problem}); point FASTAP_LAB_CACHE at a writable folder,"
            " e.g. FASTAP_LAB_CACHE=~/.cache/fastap_lab"
        ) from exc
    return folder


def load_source(
    *,
    root: str | Path | None = None,
    video: str | Path | None = None,
    labels_csv: str | Path | None = None,
    phantom: Mapping | None = None,
    cache_dir: str | Path = ".",
    channels: int = 1,
    image_size: int = 64,
    require_labels: bool = True,
    path: str | Path | None = None,
    format: str | None = None,
    series: str | None = None,
    window="auto",
    slice: int | None = None,
    fps: float | None = None,
):
    """Decode the configured frames into a :class:`fastap_lab.data.frames.FrameSet`.

    Exactly one of ``root`` (frames folder), ``video`` (+ ``labels_csv``), ``path`` (a DICOM or
    NIfTI sequence as ``format`` says, + ``labels_csv``; ``series``, ``window``, ``slice``,
    ``fps`` are its settings) or ``phantom`` (generator parameters) is used, in that order of
    precedence.
    """
    from fastap_lab.data.frames import load_frame_folder
    from fastap_lab.data.video import load_video

    if image_size < 8:
        raise ConfigError(f"data.image_size={image_size}: must be >= 8 (e.g. 64)")
    if channels not in (1, 3):
        raise ConfigError(f"data.channels={channels}: must be 1 (gray) or 3 (RGB)")
    decode = {"channels": channels, "image_size": image_size, "require_labels": require_labels}
    if root is not None:
        return load_frame_folder(Path(root).expanduser(), **decode)
    if video is not None:
        return load_video(Path(video).expanduser(), labels_csv, **decode)
    if path is not None or format is not None:
        sequence = {"series": series, "window": window, "slice": slice, "fps": fps}
        return load_sequence(format, path, labels_csv, sequence, decode)
    if phantom is not None:
        return load_frame_folder(phantom_root(phantom, cache_dir), **decode)
    raise ConfigError(
        "data.root is not set: no frames to read. Use data=frames data.root=/path/to/folder"
        " (frames/ + labels.csv), data=video data.video=/path/clip.mp4, data=dicom | nifti"
        " data.path=FILE_OR_FOLDER, or data=phantom for the embedded demo data"
    )


def load_sequence(format: str | None, path, labels_csv, sequence: dict, decode: dict):
    """A DICOM / NIfTI sequence (``data=dicom`` / ``data=nifti``) as a FrameSet."""
    if format not in SEQUENCE_FORMATS:
        raise ConfigError(
            f"data.format={format!r} with data.path={path}: choose the reader with data=dicom or"
            " data=nifti (data.format=dicom | nifti)"
        )
    if path is None:
        raise ConfigError(
            f"data={format} needs data.path=FILE_OR_FOLDER: the DICOM file / series folder /"
            " DICOMDIR, or the NIfTI file to read"
        )
    if format == "dicom":
        from fastap_lab.data.dicom import load_dicom

        series, window, fps = sequence["series"], sequence["window"], sequence["fps"]
        return load_dicom(path, labels_csv, series=series, window=window, fps=fps, **decode)
    from fastap_lab.data.nifti import load_nifti

    window, fps = sequence["window"], sequence["fps"]
    return load_nifti(path, labels_csv, slice_index=sequence["slice"], window=window, fps=fps,
                      **decode)  # fmt: skip


SEQUENCE_FORMATS = ("dicom", "nifti")


def is_indexed(data: Mapping) -> bool:
    """Whether the data config's frames are addressed by index.

    Such frames (a video, a DICOM / NIfTI sequence) have their labels CSV in
    ``data.labels_csv`` and frame names ending in ``#index``.
    """
    if data.get("root") is not None:
        return False
    return data.get("video") is not None or data.get("path") is not None


# load_source's parameters: the keys of a data config that say which frames and how to decode.
SOURCE_FIELDS = ("root", "video", "labels_csv", "phantom", "cache_dir", "channels", "image_size",
                 "require_labels", "path", "format", "series", "window", "slice", "fps")  # fmt: skip


def load_source_config(data: Mapping):
    """Decode the frames of a data config with :func:`load_source`.

    :func:`load_source` on a data config (a plain dict): its other keys (split, batches, …) are
    not about decoding and are ignored.
    """
    return load_source(**{name: data[name] for name in SOURCE_FIELDS if name in data})
