"""A long test video for the gating throughput benchmark (issue 13 / 17): the default phantom's
frames played in a loop, with a matching labels CSV (frame, label, time, displacement).

    python experiments/scripts/long_video.py PHANTOM_FOLDER OUT.mp4 [--frames 100000]

The loop repeats the same 150 s of breathing, so it measures speed and memory, not quality.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import av
import numpy as np
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phantom", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--fps", type=int, default=4)
    args = parser.parse_args()
    rows = list(csv.DictReader((args.phantom / "labels.csv").open()))
    images = [
        np.asarray(Image.open(args.phantom / "frames" / r["frame"]).convert("L")) for r in rows
    ]
    with av.open(str(args.out), "w") as container:
        stream = container.add_stream("libx264", rate=args.fps)
        stream.width, stream.height, stream.pix_fmt = (
            images[0].shape[1],
            images[0].shape[0],
            "yuv420p",
        )
        stream.options = {"crf": "10", "preset": "veryfast"}
        for i in range(args.frames):
            frame = av.VideoFrame.from_ndarray(images[i % len(images)], format="gray")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with args.out.with_suffix(".csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "label", "time", "displacement"])
        for i in range(args.frames):
            row = rows[i % len(rows)]
            writer.writerow([i, row["label"], f"{i / args.fps:.4f}", row["displacement"]])


if __name__ == "__main__":
    main()
