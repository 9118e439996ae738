"""Decoding images to uint8 [C, S, S] arrays (rules in :mod:`fastap_lab.data.frames`)."""

from __future__ import annotations

import struct
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import ExifTags, Image, ImageOps

from fastap_lab.errors import ConfigError, DataError

_HIGH_DEPTH_MODES = ("I", "F")  # plus every "I;16*" mode
_DECODE_CHUNK = 64  # images per thread-pool task: amortises the per-future overhead


class SourceInfo(NamedTuple):
    """What an image looked like before decoding, for the notes."""

    mode: str  # PIL mode, or the pixel format of a video
    size: tuple[int, int]  # (width, height), after the EXIF orientation
    pages: int = 1
    oriented: bool = False  # an EXIF orientation turned / mirrored it upright


def check_decode_settings(channels: int, image_size: int) -> None:
    """Raise ConfigError unless ``channels`` is 1 or 3 and ``image_size`` is positive."""
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


def upright(img: Image.Image) -> tuple[Image.Image, bool]:
    """``img`` turned upright by its EXIF orientation, and whether it had to be.

    ``img`` turned / mirrored as its EXIF orientation says (cameras and phones store JPEGs
    sideways with that tag), and whether it had to be.
    """
    try:
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    except (SyntaxError, ValueError, OSError, struct.error, KeyError, IndexError, TypeError):
        return img, False  # unreadable metadata: the pixels are still fine, keep them as stored
    if orientation not in range(2, 9):  # 1 = upright; other values are not orientations
        return img, False
    return ImageOps.exif_transpose(img), True


def _decode(path: Path, channels: int, image_size: int) -> tuple[np.ndarray, SourceInfo]:
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so a truncated file fails here and not later
            pages = getattr(img, "n_frames", 1)
            turned, oriented = upright(img)
            info = SourceInfo(img.mode, turned.size, pages, oriented)
            return to_channels_and_size(turned, channels, image_size), info
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


def count_noun(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1 (``1 frame``, ``3 frames``)."""
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
        notes.append(f"scaled {count_noun(high_depth, f'16-bit {noun}')} to 8 bit by own maximum")
    if alpha := sum(n for mode, n in modes.items() if mode in ("RGBA", "LA", "PA", "La", "RGBa")):
        notes.append(f"dropped the alpha channel of {count_noun(alpha, noun)}")
    if oriented := sum(1 for i in infos if i.oriented):
        notes.append(
            f"turned {count_noun(oriented, noun)} upright as the EXIF orientation tag says"
        )
    if multi_page := sum(1 for i in infos if i.pages > 1):
        notes.append(f"{count_noun(multi_page, noun)} have several pages; only the first is used")
    if len(sizes) > 1:
        found = ", ".join(f"{w}x{h}: {n}" for (w, h), n in sizes.most_common(5))
        notes.append(f"source {noun}s differ in size ({found})")
    for (width, height), n in sizes.most_common():
        if (width, height) != (image_size, image_size):
            notes.append(
                f"resized {count_noun(n, noun)} from {width}x{height} to {image_size}x{image_size}"
                + ("" if width == height else " (not square; aspect ratio not kept)")
            )
    return notes
