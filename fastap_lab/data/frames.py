"""Read a folder of frames (and optional query images) into memory.

Folder format (also what the phantom generator writes)::

    ROOT/frames/*        images: .png .jpg .jpeg .tif .tiff .bmp (8/16-bit; gray, RGB, RGBA, palette)
    ROOT/labels.csv      columns frame,label [,time] [,video]; other numeric columns (e.g.
                         displacement) are kept in FrameSet.extras, other text columns ignored.
                         `frame` is the file name relative to ROOT/frames/ (subfolders allowed;
                         an absolute name or one whose `..` leads outside frames/ is an error)
    ROOT/queries/*       optional query images (read by :mod:`fastap_lab.data.queries`)
    ROOT/queries.csv     optional, columns query,label; an unlisted query image gets label 1

Decoding rules (every image, frames and queries alike):

* An EXIF orientation tag (JPEG / TIFF from cameras and phones) is applied first, as image
  viewers do (``PIL.ImageOps.exif_transpose``); the frames it turned are counted in the notes.
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

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from fastap_lab.data.decode import (  # noqa: F401  (load_image is public API here)
    check_decode_settings,
    count_noun,
    decode_images,
    load_image,
    source_notes,
)
from fastap_lab.data.label_table import LabelTable, read_label_table
from fastap_lab.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


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
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> float64 [N]

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
            extras={name: values[index.to(values.device)] for name, values in self.extras.items()},
        )


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


def check_names_stay_inside(table: LabelTable, folder: Path) -> None:
    """Raise DataError unless every name of ``table`` stays inside ``folder``.

    Every name of ``table`` is relative and stays inside ``folder`` (no absolute path, no
    ``..`` leading out), so no file outside it is ever read. Checked on the text of the name:
    symbolic links inside ``folder`` are followed as the user made them.
    """
    for key, line in zip(table.keys, table.lines, strict=True):
        normal = os.path.normpath(key)
        if os.path.isabs(key) or Path(key).drive:
            problem = "is an absolute path"
        elif normal == os.pardir or normal.startswith(os.pardir + os.sep):
            problem = f"leads outside {folder.name}/"
        else:
            continue
        raise DataError(
            f"{table.where} line {line}: {table.key_column} {key!r} {problem}; names are relative"
            f" to {folder} (e.g. 'frame_0001.png' or 'sub/frame_0001.png'): fix the row"
        )


def check_listed_files_exist(table: LabelTable, folder: Path, available: list[str]) -> None:
    """Raise DataError naming the rows of ``table`` whose files are not in ``folder``."""
    check_names_stay_inside(table, folder)
    known = set(available)
    missing = [n for n in table.keys if n not in known and not (folder / n).is_file()]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:3])
        hint = f" ('{table.key_column}' is relative to {folder.name}/)"
        hint = hint if any(n.startswith(f"{folder.name}/") for n in missing) else ""
        raise DataError(
            f"{table.where}: {count_noun(len(missing), 'listed file')} not found in {folder} "
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
        extras={n: torch.tensor(v, dtype=torch.float64) for n, v in table.extras.items()},
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
            notes.append(
                f"ignored {count_noun(unlisted, 'image')} in frames/ not listed in labels.csv"
            )
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
