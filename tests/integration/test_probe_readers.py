"""Issue 14's probe, readers' side (cases 4, 6, 8, 12): a cut video, EXIF orientation, names
leading out of frames/ or queries/, extra labels.csv columns. One table row per case
(tests/integration/probe.py runs it, in-process through ``run_task``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from fastap_lab.cli import EXIT_USER_ERROR
from fastap_lab.data.frames import load_frame_folder, load_image
from fastap_lab.data.queries import load_queries
from fastap_lab.data.video import load_video
from tests.integration.probe import Probe, Row, check_row, frames_with_labels, rows


def write_cut_video(path: Path, count: int = 40) -> None:
    """An mp4 whose header (moov first) lists ``count`` frames, cut to 45 % of its bytes."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(count):
            image = rng.integers(0, 256, (32, 32), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="gray")))
        container.mux(stream.encode())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 45 // 100])


# --------------------------------------------------------------------------- case 4
def cut_video_without_labels(probe: Probe) -> str:
    write_cut_video(probe.tmp / "cut.mp4")
    probe.built()
    frames = load_video(probe.tmp / "cut.mp4", None, image_size=32, require_labels=False)
    assert 0 < len(frames) < 40 and f"but {len(frames)} could be decoded" in frames.notes[-1]
    return probe.caplog.text + " ".join(frames.notes)


def cut_video_with_labels(probe: Probe) -> str:
    write_cut_video(probe.tmp / "cut.mp4")
    (probe.tmp / "labels.csv").write_text(rows(*(f"{i},{i % 2}" for i in range(40))))
    probe.built()
    return load_video(probe.tmp / "cut.mp4", probe.tmp / "labels.csv", image_size=32)


# --------------------------------------------------------------------------- case 6
def rotated_jpeg(probe: Probe) -> str:
    """A 32x16 (w x h) JPEG with a bright left band and EXIF orientation 6 (rotate 90 degrees
    clockwise to display) reads as the clockwise-rotated 16x32 picture: the band on top."""
    array = np.full((16, 32), 30, np.uint8)
    array[:, :8] = 220
    exif = Image.Exif()
    exif[274] = 6
    Image.fromarray(array).save(probe.tmp / "rotated.jpg", exif=exif.tobytes(), quality=100)
    Image.fromarray(np.rot90(array, k=-1).copy()).save(probe.tmp / "upright.png")
    probe.built()
    decoded, notes = load_image(probe.tmp / "rotated.jpg", channels=1, image_size=32)
    expected, _ = load_image(probe.tmp / "upright.png", channels=1, image_size=32)
    assert np.abs(decoded.astype(int) - expected).max() <= 8  # JPEG rounding only
    assert decoded[0, :8].mean() > 200 and decoded[0, -8:].mean() < 50
    return " ".join(notes)


# --------------------------------------------------------------------------- case 8
def outside_frames(name: str) -> Callable[[Probe], object]:
    def act(probe: Probe):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(probe.tmp / "secret.png")
        root = frames_with_labels(
            probe, rows("f0.png,0", f"{name.replace('TMP', str(probe.tmp))},1")
        )
        return load_frame_folder(root, image_size=8)

    return act


def outside_queries(probe: Probe):
    root = frames_with_labels(probe, "default")
    (root / "queries").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "f_outside.png")
    (root / "queries.csv").write_text("query,label\n../f_outside.png,1\n")
    probe.built()
    return load_queries(root, channels=1, image_size=8)


def dots_inside_frames(probe: Probe) -> str:
    root = frames_with_labels(probe, rows("sub/../f0.png,0", "./f1.png,1"), count=2)
    (root / "frames" / "sub").mkdir()
    probe.built()
    frames = load_frame_folder(root, image_size=8)
    assert frames.names == ["sub/../f0.png", "f1.png"] and len(frames) == 2
    return "read " + ", ".join(frames.names)


# --------------------------------------------------------------------------- extra columns
def extra_columns(probe: Probe) -> str:
    csv = rows(
        "f0.png,0,0.25,left,1e-3",
        "f1.png,1,-2,right,4",
        header="frame,label,displacement,note,gain",
    )
    frames = load_frame_folder(frames_with_labels(probe, csv, count=2), image_size=8)
    assert sorted(frames.extras) == ["displacement", "gain"]  # `note` is text: ignored
    assert frames.extras["displacement"].tolist() == [0.25, -2.0]
    assert frames.extras["displacement"].dtype == torch.float64
    assert frames.subset(torch.tensor([1])).extras["gain"].tolist() == [4.0]
    return "kept " + ", ".join(sorted(frames.extras))


ROWS = [
    Row("4 cut video, no labels: used as far as it decodes, said", cut_video_without_labels, 0,
        ("video ", "cut.mp4: its container lists 40 frames but", "could be decoded", "cut or damaged"),
        (".",)),
    Row("4 cut video, with labels: the video is blamed", cut_video_with_labels, EXIT_USER_ERROR,
        ("error: video ", "cut.mp4: its container lists 40 frames but", "cut or damaged",
         "labels.csv", "lists frame", "whole video"), (".",)),
    Row("6 EXIF orientation applied", rotated_jpeg, 0, ("turned 1 image upright", "EXIF"), (".",)),
    Row("8 absolute frame name", outside_frames("TMP/secret.png"), EXIT_USER_ERROR,
        ("labels.csv", "line 3", "secret.png", "is an absolute path", "fix the row")),
    Row("8 frame name leading out of frames/", outside_frames("../../secret.png"), EXIT_USER_ERROR,
        ("labels.csv", "line 3", "'../../secret.png' leads outside frames/", "fix the row")),
    Row("8 query name leading out of queries/", outside_queries, EXIT_USER_ERROR,
        ("queries.csv", "line 2", "leads outside queries/")),
    Row("8 '..' that stays inside frames/ is fine", dots_inside_frames, 0, ("read sub/../f0.png, f1.png",)),
    Row("12 extra labels.csv columns kept when numeric", extra_columns, 0, ("kept displacement, gain",)),
    Row("12 non-numeric displacement names its row", lambda p: load_frame_folder(
        frames_with_labels(p, rows("f0.png,0,1.5", "f1.png,1,high", header="frame,label,displacement"), count=2),
        image_size=8), EXIT_USER_ERROR, ("labels.csv", "line 3", "displacement 'high' is not a finite number")),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[row.case for row in ROWS])
def test_probe_row(row, request, tmp_path, make_cfg, caplog, capsys):
    check_row(row, request, tmp_path, make_cfg, caplog, capsys)
