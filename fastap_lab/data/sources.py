"""Where frames come from: a folder, a video file, or the embedded phantom (generated, cached)."""

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
):
    """Decode the configured frames into a :class:`fastap_lab.data.frames.FrameSet`.

    Exactly one of ``root`` (frames folder), ``video`` (+ ``labels_csv``) or ``phantom``
    (generator parameters) is used, in that order of precedence.
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
    if phantom is not None:
        return load_frame_folder(phantom_root(phantom, cache_dir), **decode)
    raise ConfigError(
        "data.root is not set: no frames to read. Use data=frames data.root=/path/to/folder"
        " (frames/ + labels.csv), data=video data.video=/path/clip.mp4, or data=phantom"
        " for the embedded demo data"
    )


# load_source's parameters: the keys of a data config that say which frames and how to decode.
SOURCE_FIELDS = ("root", "video", "labels_csv", "phantom", "cache_dir", "channels", "image_size",
                 "require_labels")  # fmt: skip


def load_source_config(data: Mapping):
    """:func:`load_source` on a data config (a plain dict): its other keys (split, batches, …) are
    not about decoding and are ignored."""
    return load_source(**{name: data[name] for name in SOURCE_FIELDS if name in data})
