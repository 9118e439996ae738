"""Read a folder of frames (and optional query images) into memory.

Folder format (also what the phantom generator writes)::

    ROOT/frames/*        images: .png .jpg .jpeg .tif .tiff .bmp (8/16-bit; gray, RGB, RGBA, palette)
    ROOT/labels.csv      columns frame,label [,time] [,video]; other columns are ignored.
                         `frame` is the file name relative to ROOT/frames/ (subfolders allowed)
    ROOT/queries/*       optional query images
    ROOT/queries.csv     optional, columns query,label; an unlisted query image gets label 1

Decoding rules (every image, frames and queries alike):

* 16-bit (and 32-bit / float) gray images are scaled to uint8 by their own maximum:
  ``round(value * 255 / max(image.max(), 1))``, negative values clipped to 0. Each image is scaled
  on its own, so brightness is not comparable across 16-bit frames.
* Palette and RGBA images are converted to RGB first; the alpha channel is dropped, not blended.
* channels=1: RGB becomes gray by PIL's "L" conversion (ITU-R 601-2 luma,
  L = R*299/1000 + G*587/1000 + B*114/1000). channels=3: gray is replicated to 3 channels.
* Every image is resized to image_size x image_size with PIL ``Image.BILINEAR``
  (``reducing_gap=None``); PIL widens the bilinear kernel when shrinking, so downsampling is
  antialiased. The aspect ratio is not kept; sizes that differ or are not square are reported in
  ``FrameSet.notes``, never an error. Only the first page of a multi-page TIFF is read.

Order: labels.csv row order. Without labels.csv (allowed when require_labels=False) all images
under frames/ in natural order of their relative path (frame_2 before frame_10).
Labels are any integers; -1 is not special. ``time`` values must be finite numbers; without a
``time`` column the time is the row index. ``video`` values become group indices in order of
first appearance. Images in frames/ that labels.csv does not list are ignored (with a note).
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from fastap_lab.errors import ConfigError, DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_HIGH_DEPTH_MODES = ("I", "F")  # plus every "I;16*" mode
_DECODE_CHUNK = 64  # images per thread-pool task: amortises the per-future overhead


@dataclass
class FrameSet:
    """Decoded frames with their labels, times and groups (all in labels.csv row order)."""

    images: torch.Tensor  # uint8 [N, C, H, W]
    names: list[str]  # frame names as in labels.csv (video: f"{video_file}#{index}")
    labels: torch.Tensor | None  # int64 [N]; None when the data has no labels
    times: torch.Tensor  # float64 [N]
    groups: torch.Tensor  # int64 [N], index into group_names
    group_names: list[str]
    root: Path
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, index: torch.Tensor) -> FrameSet:
        """Frames at ``index`` (int64 [M] positions or bool [N] mask), in that order."""
        index = index.reshape(-1)
        if index.dtype == torch.bool:
            index = index.nonzero().reshape(-1)
        positions = index.cpu().tolist()
        return replace(
            self,
            images=self.images[index.to(self.images.device)],
            names=[self.names[i] for i in positions],
            labels=None if self.labels is None else self.labels[index.to(self.labels.device)],
            times=self.times[index.to(self.times.device)],
            groups=self.groups[index.to(self.groups.device)],
            group_names=list(self.group_names),
            notes=list(self.notes),
        )


@dataclass
class QueryImage:
    name: str
    path: Path
    image: torch.Tensor  # uint8 [C, H, W]
    label: int
    notes: list[str] = field(default_factory=list)


@dataclass
class LabelTable:
    """Validated rows of a labels.csv / queries.csv, in file order."""

    where: str  # "labels.csv (/full/path/labels.csv)", for messages
    key_column: str  # "frame" or "query"
    keys: list[str]
    labels: list[int] | None
    times: list[float] | None = None
    videos: list[str] | None = None
    lines: list[int] = field(default_factory=list)  # line number of each row in the file

    @classmethod
    def from_keys(cls, path: Path, key_column: str, keys: list[str]) -> LabelTable:
        """A table without labels, as if a CSV listed ``keys`` only."""
        lines = list(range(2, len(keys) + 2))  # as if below a header line
        return cls(f"{path.name} ({path})", key_column, list(keys), None, lines=lines)


def _read_csv(path: Path, where: str, key_column: str) -> tuple[list[str], list[tuple[int, list]]]:
    """Lower-cased header and the non-blank (line number, cells) rows."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(
            f"{where}: cannot read it as CSV ({error}); save it as UTF-8 comma-separated text"
        ) from error
    if header is None or not any(cell.strip() for cell in header):
        raise DataError(f"{where}: the file is empty; write a header line {key_column},label")
    return [cell.strip().lower() for cell in header], rows


def _parse_label(raw: str, where: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        try:
            as_float = float(raw)
        except ValueError:
            as_float = math.nan
        value = int(as_float) if math.isfinite(as_float) and as_float.is_integer() else None
    if value is None or not -(2**63) <= value < 2**63:
        problem = "is empty" if not raw else f"{raw!r} is not an integer"
        raise DataError(f"{where}: label {problem}; labels must be integers (-1 is not special)")
    return value


def _parse_time(raw: str, where: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        problem = "is empty" if not raw else f"{raw!r} is not a finite number"
        raise DataError(f"{where}: time {problem}; fix it or remove the 'time' column")
    return value


def _check_unique(keys: list[str], lines: list[int], where: str, key_column: str) -> None:
    first_line: dict[str, int] = {}
    for key, line in zip(keys, lines, strict=True):
        if key in first_line:
            repeats = [str(n) for k, n in zip(keys, lines, strict=True) if k == key]
            raise DataError(
                f"{where}: {key_column} {key!r} is listed more than once (lines "
                f"{', '.join(repeats)}); keep one row per {key_column}"
            )
        first_line[key] = line


def read_label_table(path: Path, *, key_column: str, need_label: bool) -> LabelTable:
    """Parse and validate a CSV with columns ``key_column``, label [, time] [, video]."""
    where = f"{path.name} ({path})"
    header, rows = _read_csv(path, where, key_column)
    columns: dict[str, int] = {}
    for i, name in enumerate(header):
        columns.setdefault(name, i)
    found = ", ".join(header) + (" - separated by ';', use ','" if ";" in "".join(header) else "")
    for column, needed in ((key_column, True), ("label", need_label)):
        if needed and column not in columns:
            wants_labels = column == "label" and key_column == "frame"
            fix = " or set data.require_labels=false" if wants_labels else ""
            raise DataError(f"{where}: column '{column}' is missing (found: {found}); add it{fix}")
    if not rows:
        raise DataError(f"{where}: no rows below the header; add one row per {key_column}")

    def column_values(column: str) -> list[str]:
        i = columns[column]
        return [row[i].strip() if i < len(row) else "" for _, row in rows]

    keys = [k.removeprefix("./") for k in column_values(key_column)]
    lines = [line for line, _ in rows]
    if "" in keys:
        raise DataError(f"{where} line {lines[keys.index('')]}: {key_column} is empty; fill it")
    _check_unique(keys, lines, where, key_column)
    at = [
        f"{where} line {line}, {key_column} {key!r}" for key, line in zip(keys, lines, strict=True)
    ]
    table = LabelTable(where, key_column, keys, None, lines=lines)
    if "label" in columns:
        table.labels = [_parse_label(v, a) for v, a in zip(column_values("label"), at, strict=True)]
    if "time" in columns:
        table.times = [_parse_time(v, a) for v, a in zip(column_values("time"), at, strict=True)]
    if "video" in columns:
        table.videos = column_values("video")
    return table


class SourceInfo(NamedTuple):
    """What an image looked like before decoding, for the notes."""

    mode: str  # PIL mode, or the pixel format of a video
    size: tuple[int, int]  # (width, height)
    pages: int = 1


def check_decode_settings(channels: int, image_size: int) -> None:
    if channels not in (1, 3):
        raise ConfigError(f"data.channels={channels} is not supported; use 1 (gray) or 3 (RGB)")
    if image_size < 1:
        raise ConfigError(f"data.image_size={image_size} must be a positive number of pixels")


def _is_high_depth(mode: str) -> bool:
    return mode in _HIGH_DEPTH_MODES or mode.startswith("I;16")


def _to_8bit_gray_or_rgb(img: Image.Image) -> Image.Image:
    """An "L" or "RGB" image; 16-bit gray is scaled by its own maximum."""
    if _is_high_depth(img.mode):
        values = np.clip(np.asarray(img, dtype=np.float64), 0, None)
        scaled = np.rint(values * 255.0 / max(float(values.max()), 1.0))
        return Image.fromarray(scaled.astype(np.uint8), "L")
    if img.mode in ("L", "RGB"):
        return img
    if img.mode in ("1", "LA", "La"):
        return img.convert("L")
    if img.mode in ("P", "PA"):  # via RGBA so palette transparency does not trigger a warning
        img = img.convert("RGBA")
    return img.convert("RGB")


def to_channels_and_size(img: Image.Image, channels: int, image_size: int) -> np.ndarray:
    """uint8 [C, image_size, image_size] from any PIL image (rules in the module docstring)."""
    img = _to_8bit_gray_or_rgb(img)
    wanted_mode = "L" if channels == 1 else "RGB"
    if img.mode != wanted_mode:
        img = img.convert(wanted_mode)
    if img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.BILINEAR, reducing_gap=None)
    array = np.asarray(img)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _decode(path: Path, channels: int, image_size: int) -> tuple[np.ndarray, SourceInfo]:
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so a truncated file fails here and not later
            info = SourceInfo(img.mode, img.size, getattr(img, "n_frames", 1))
            return to_channels_and_size(img, channels, image_size), info
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(
            f"{path}: cannot read this image ({error}); re-export it as PNG or remove it "
            "(and its row in the CSV)"
        ) from error


def load_image(path: Path, *, channels: int, image_size: int) -> tuple[np.ndarray, list[str]]:
    """One image as uint8 [C, image_size, image_size] plus notes on what was converted."""
    check_decode_settings(channels, image_size)
    array, info = _decode(Path(path), channels, image_size)
    return array.copy(), source_notes(
        [info], channels=channels, image_size=image_size, noun="image"
    )


def decode_images(
    paths: list[Path], *, channels: int, image_size: int, num_workers: int
) -> tuple[np.ndarray, list[SourceInfo]]:
    """uint8 [N, C, S, S] in the order of ``paths``, decoded by a thread pool."""
    images = np.empty((len(paths), channels, image_size, image_size), dtype=np.uint8)

    def decode_chunk(start: int) -> list[SourceInfo]:
        infos = []
        for i in range(start, min(start + _DECODE_CHUNK, len(paths))):
            images[i], info = _decode(paths[i], channels, image_size)
            infos.append(info)
        return infos

    starts = range(0, len(paths), _DECODE_CHUNK)
    if num_workers <= 1 or len(starts) <= 1:
        chunks = [decode_chunk(start) for start in starts]
    else:
        pool = ThreadPoolExecutor(num_workers)
        try:
            chunks = list(pool.map(decode_chunk, starts))
        finally:  # on the first bad image, do not decode the rest
            pool.shutdown(wait=True, cancel_futures=True)
    return images, [info for chunk in chunks for info in chunk]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def source_notes(
    infos: list[SourceInfo], *, channels: int, image_size: int, noun: str = "frame"
) -> list[str]:
    """Human-readable notes on the conversions that :func:`to_channels_and_size` made."""
    notes, modes, sizes = [], Counter(i.mode for i in infos), Counter(i.size for i in infos)
    if len(modes) > 1:
        found = ", ".join(f"{mode}: {n}" for mode, n in modes.most_common())
        notes.append(f"{noun}s have mixed image modes ({found}); all converted to {channels} ch")
    if high_depth := sum(n for mode, n in modes.items() if _is_high_depth(mode)):
        notes.append(f"scaled {_count(high_depth, f'16-bit {noun}')} to 8 bit by own maximum")
    if alpha := sum(n for mode, n in modes.items() if mode in ("RGBA", "LA", "PA", "La", "RGBa")):
        notes.append(f"dropped the alpha channel of {_count(alpha, noun)}")
    if multi_page := sum(1 for i in infos if i.pages > 1):
        notes.append(f"{_count(multi_page, noun)} have several pages; only the first is used")
    if len(sizes) > 1:
        found = ", ".join(f"{w}x{h}: {n}" for (w, h), n in sizes.most_common(5))
        notes.append(f"source {noun}s differ in size ({found})")
    for (width, height), n in sizes.most_common():
        if (width, height) != (image_size, image_size):
            notes.append(
                f"resized {_count(n, noun)} from {width}x{height} to {image_size}x{image_size}"
                + ("" if width == height else " (not square; aspect ratio not kept)")
            )
    return notes


def natural_key(name: str) -> list:
    """Sort key that orders frame_2 before frame_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(folder: Path) -> list[str]:
    """Image paths under ``folder`` (recursive, relative, "/"-separated), natural order."""
    names = [
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_EXTENSIONS
        and not path.name.startswith(".")  # macOS "._x.png" resource forks are not images
        and path.is_file()
    ]
    return sorted(names, key=natural_key)


def check_listed_files_exist(table: LabelTable, folder: Path, available: list[str]) -> None:
    known = set(available)
    missing = [n for n in table.keys if n not in known and not (folder / n).is_file()]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:3])
        hint = f" ('{table.key_column}' is relative to {folder.name}/)"
        hint = hint if any(n.startswith(f"{folder.name}/") for n in missing) else ""
        raise DataError(
            f"{table.where}: {_count(len(missing), 'listed file')} not found in {folder} "
            f"(e.g. {shown}){hint}; fix the names or remove those rows"
        )


def _frames_root(root: str | Path) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(
            f"data root {root} does not exist; set data.root=/path/to/folder holding frames/ "
            "and labels.csv"
        )
    if not root.is_dir():
        raise DataError(
            f"data root {root} is a file, not a folder; set data.root= to a folder holding "
            "frames/ and labels.csv (for a video, pass the video file and its labels CSV)"
        )
    if not (root / "frames").is_dir():
        found = ", ".join(sorted(p.name for p in root.iterdir())[:8]) or "nothing"
        raise DataError(f"{root}: no frames/ folder (found: {found}); put the images in frames/")
    return root


def build_frameset(
    images: np.ndarray, table: LabelTable, *, names: list[str], root: Path, notes: list[str],
    default_times: np.ndarray, default_group: str,
) -> FrameSet:  # fmt: skip
    """Assemble a FrameSet; ``table`` rows match ``images`` one to one."""
    if table.videos is None:
        group_names, groups = [default_group], [0] * len(names)
    else:
        group_names = list(dict.fromkeys(table.videos))  # order of first appearance
        position = {name: i for i, name in enumerate(group_names)}
        groups = [position[v] for v in table.videos]
    times = default_times if table.times is None else np.asarray(table.times)
    return FrameSet(
        images=torch.from_numpy(images),
        names=names,
        labels=None if table.labels is None else torch.tensor(table.labels, dtype=torch.int64),
        times=torch.as_tensor(times, dtype=torch.float64),
        groups=torch.tensor(groups, dtype=torch.int64),
        group_names=group_names,
        root=root,
        notes=notes,
    )


def load_frame_folder(
    root: str | Path,
    *,
    channels: int = 1,
    image_size: int = 64,
    require_labels: bool = True,
    num_workers: int = 4,
) -> FrameSet:
    """Decode ``ROOT/frames`` listed by ``ROOT/labels.csv`` (see the module docstring)."""
    check_decode_settings(channels, image_size)
    root = _frames_root(root)
    frames_dir, labels_csv = root / "frames", root / "labels.csv"
    available = list_images(frames_dir)
    if not available:
        raise DataError(
            f"{frames_dir}: no images found (accepted: {', '.join(IMAGE_EXTENSIONS)}); "
            "put the frames there"
        )
    notes = []
    if labels_csv.is_file():
        table = read_label_table(labels_csv, key_column="frame", need_label=require_labels)
        check_listed_files_exist(table, frames_dir, available)
        if unlisted := len(set(available) - set(table.keys)):
            notes.append(f"ignored {_count(unlisted, 'image')} in frames/ not listed in labels.csv")
    elif require_labels:
        raise DataError(
            f"{labels_csv} is missing; add labels.csv with columns frame,label or set "
            "data.require_labels=false"
        )
    else:
        table = LabelTable.from_keys(labels_csv, "frame", available)
        notes.append("no labels.csv: all images in frames/ used in natural order, without labels")
    images, infos = decode_images(
        [frames_dir / name for name in table.keys],
        channels=channels, image_size=image_size, num_workers=num_workers,
    )  # fmt: skip
    notes += source_notes(infos, channels=channels, image_size=image_size)
    return build_frameset(
        images, table, names=list(table.keys), root=root, notes=notes,
        default_times=np.arange(len(table.keys), dtype=np.float64), default_group=root.name,
    )  # fmt: skip


def _query_image(path: Path, name: str, label: int, channels: int, image_size: int) -> QueryImage:
    array, notes = load_image(path, channels=channels, image_size=image_size)
    return QueryImage(name=name, path=path, image=torch.from_numpy(array), label=label, notes=notes)


def load_queries(root: str | Path, *, channels: int, image_size: int) -> list[QueryImage]:
    """``ROOT/queries/*`` in queries.csv order, then unlisted images (label 1) in natural order.

    Returns [] when neither ``ROOT/queries`` nor ``ROOT/queries.csv`` exists.
    """
    check_decode_settings(channels, image_size)
    queries_dir, queries_csv = Path(root) / "queries", Path(root) / "queries.csv"
    if not queries_dir.is_dir() and not queries_csv.is_file():
        return []
    available = list_images(queries_dir) if queries_dir.is_dir() else []
    table = LabelTable.from_keys(queries_csv, "query", [])
    if queries_csv.is_file():
        table = read_label_table(queries_csv, key_column="query", need_label=True)
        check_listed_files_exist(table, queries_dir, available)
    listed = set(table.keys)
    unlisted = [name for name in available if name not in listed]
    labels = list(table.labels or []) + [1] * len(unlisted)
    queries = [
        _query_image(queries_dir / name, name, label, channels, image_size)
        for name, label in zip(list(table.keys) + unlisted, labels, strict=True)
    ]
    for query in queries[len(table.keys) :]:
        query.notes.append("not listed in queries.csv; label 1")
    return queries


def load_query_files(
    paths: list[str | Path],
    *,
    channels: int,
    image_size: int,
    labels: list[int] | None = None,
) -> list[QueryImage]:
    """Query images given one by one (e.g. on the command line); label 1 unless ``labels``."""
    check_decode_settings(channels, image_size)
    if labels is not None and len(labels) != len(paths):
        raise DataError(
            f"got {_count(len(paths), 'query file')} but {_count(len(labels), 'query label')}; "
            "give one label per query file, or none (every query then gets label 1)"
        )
    queries = []
    for i, path in enumerate(Path(p).expanduser() for p in paths):
        if not path.is_file():
            raise DataError(f"query file {path} does not exist; check the path")
        label = 1 if labels is None else _integer_label(labels[i], path)
        queries.append(_query_image(path, path.name, label, channels, image_size))
    return queries


def _integer_label(value: object, path: Path) -> int:
    is_integral = isinstance(value, (int, np.integer)) or (
        isinstance(value, float) and math.isfinite(value) and value.is_integer()
    )
    if isinstance(value, bool) or not is_integral:
        raise DataError(f"query {path}: label {value!r} is not an integer; give integer labels")
    return int(value)
