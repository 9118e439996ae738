"""Reading a video (with or without labels.csv); bad labels and undecodable files are one
DataError."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fastap_lab.data.video import load_video
from fastap_lab.errors import DataError
from tests.frame_inputs import square_column, write_video


def test_video_without_labels_decodes_every_frame_in_order(tmp_path):
    written = write_video(tmp_path / "clip.mp4")
    frames = load_video(tmp_path / "clip.mp4", None, image_size=32, require_labels=False)
    assert frames.images.shape == (12, 1, 32, 32) and frames.labels is None
    assert frames.names == [f"clip.mp4#{i}" for i in range(12)]
    torch.testing.assert_close(frames.times, torch.arange(12, dtype=torch.float64) / 10)
    for decoded, original in zip(frames.images[:, 0].numpy(), written, strict=True):
        assert np.abs(decoded.astype(float) - original).mean() < 8
        assert square_column(decoded) == square_column(original)
    assert frames.group_names == ["clip.mp4"] and frames.groups.tolist() == [0] * 12


def test_video_with_labels_keeps_csv_rows(tmp_path):
    written = write_video(tmp_path / "clip.mp4")
    (tmp_path / "labels.csv").write_text("frame,label\n7,1\n0,0\n11,1\n")
    frames = load_video(tmp_path / "clip.mp4", tmp_path / "labels.csv", channels=3, image_size=16)
    assert frames.images.shape == (3, 3, 16, 16) and frames.labels.tolist() == [1, 0, 1]
    assert frames.names == ["clip.mp4#7", "clip.mp4#0", "clip.mp4#11"]
    torch.testing.assert_close(frames.times, torch.tensor([0.7, 0.0, 1.1], dtype=torch.float64))
    reference = [np.asarray(Image.fromarray(written[i]).resize((16, 16))) for i in (7, 0, 11)]
    for decoded, original in zip(frames.images.numpy(), reference, strict=True):
        assert np.abs(decoded.astype(float) - original[None]).mean() < 8
    assert any("resized 3 frames from 32x32 to 16x16" in note for note in frames.notes)


@pytest.mark.parametrize(
    ("csv", "expected"),
    [
        ("frame,label\n3,0\n12,1\n40,1\n", ["labels.csv", "line 3", "index 12", "12 frames"]),
        ("frame,label\n3,0\nlast,1\n", ["labels.csv", "line 3", "'last'", "frame index"]),
        ("frame,label\n3,0\n03,1\n", ["labels.csv", "index 3", "lines 2, 3"]),
    ],
)
def test_video_bad_labels(tmp_path, csv, expected):
    write_video(tmp_path / "clip.mp4")
    (tmp_path / "labels.csv").write_text(csv)
    with pytest.raises(DataError) as raised:
        load_video(tmp_path / "clip.mp4", tmp_path / "labels.csv", image_size=8)
    assert type(raised.value) is DataError
    for part in expected:
        assert part in str(raised.value)


def test_video_that_cannot_be_decoded(tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all" * 100)
    with pytest.raises(DataError, match=r"broken\.mp4.*ffmpeg -i") as raised:
        load_video(tmp_path / "broken.mp4", None, require_labels=False)
    assert type(raised.value) is DataError
    with pytest.raises(DataError, match="require_labels=false"):
        load_video(tmp_path / "broken.mp4", None)
    with pytest.raises(DataError, match="missing.mp4"):
        load_video(tmp_path / "missing.mp4", None, require_labels=False)
