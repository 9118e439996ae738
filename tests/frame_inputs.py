"""Small inputs for the reader tests of both tiers: image folders, gray / noise images and a
short video of a moving square (its frames returned for comparison)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

RNG = np.random.default_rng(0)


def make_root(tmp_path: Path, images: dict[str, Image.Image], csv: str | None) -> Path:
    """A data root with ``frames/<name>`` for each image and, unless None, ``labels.csv``."""
    root = tmp_path / "root"
    for name, image in images.items():
        (root / "frames" / name).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / "frames" / name)
    if csv is not None:
        (root / "labels.csv").write_text(csv)
    return root


def gray(value: int = 100, size: tuple[int, int] = (16, 16)) -> Image.Image:
    return Image.fromarray(np.full(size[::-1], value, dtype=np.uint8))


def noise_image(mode: str, size: int = 16) -> tuple[Image.Image, np.ndarray]:
    shape = {"L": (size, size), "RGB": (size, size, 3), "RGBA": (size, size, 4)}[mode]
    array = RNG.integers(0, 256, shape, dtype=np.uint8)
    return Image.fromarray(array, mode), array


def three_frames_csv() -> str:
    return "frame,label\na.png,0\nb.png,1\nc.png,2\n"


def write_video(path: Path, count: int = 12, size: int = 32, rate: int = 10) -> list[np.ndarray]:
    """A gray video of a bright square moving 2 px per frame; returns the frames written."""
    frames = []
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        stream.options = {"crf": "5"} if codec == "libx264" else {"qscale": "2"}
        for i in range(count):
            frame = np.full((size, size), 40, np.uint8)
            frame[10:18, 2 * i : 2 * i + 8] = 220
            frames.append(frame)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="gray")))
        container.mux(stream.encode())
    return frames


def square_column(image: np.ndarray) -> int:
    return int(np.argmax(np.convolve(image.astype(float).mean(0), np.ones(8), "valid")))
