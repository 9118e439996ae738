"""Reading frame folders: decoding rules (bit depth, colour, sizes), order, labels.csv columns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fastap_lab.data.frames import load_frame_folder
from tests.frame_inputs import RNG, gray, make_root, noise_image, three_frames_csv


def test_gray_png_is_read_exactly_and_replicated_for_three_channels(tmp_path):
    image, array = noise_image("L")
    root = make_root(tmp_path, {"a.png": image}, "frame,label\na.png,4\n")
    one = load_frame_folder(root, channels=1, image_size=16, num_workers=1)
    three = load_frame_folder(root, channels=3, image_size=16, num_workers=1)
    assert one.images.dtype == torch.uint8 and one.images.shape == (1, 1, 16, 16)
    np.testing.assert_array_equal(one.images[0, 0].numpy(), array)
    for channel in range(3):
        np.testing.assert_array_equal(three.images[0, channel].numpy(), array)
    assert one.labels.tolist() == [4] and one.labels.dtype == torch.int64


def test_rgb_jpg_becomes_itu601_luma(tmp_path):
    image, _ = noise_image("RGB")
    root = make_root(tmp_path, {"a.jpg": image}, "frame,label\na.jpg,0\n")
    decoded_rgb = np.asarray(Image.open(root / "frames" / "a.jpg"), dtype=np.float64)
    luma = decoded_rgb @ np.array([0.299, 0.587, 0.114])  # ITU-R 601-2, written independently
    frames = load_frame_folder(root, channels=1, image_size=16)
    assert np.abs(frames.images[0, 0].numpy() - luma).max() <= 1.0
    frames_rgb = load_frame_folder(root, channels=3, image_size=16)
    np.testing.assert_array_equal(frames_rgb.images[0].numpy().transpose(1, 2, 0), decoded_rgb)


@pytest.mark.parametrize("suffix", ["png", "tif"])
@pytest.mark.parametrize("peak", [4095, 65535, 0])
def test_16bit_is_scaled_by_its_own_maximum(tmp_path, suffix, peak):
    values = RNG.integers(0, peak + 1, (16, 16)).astype(np.uint16)
    values[0, 0] = peak
    root = make_root(tmp_path, {f"a.{suffix}": Image.fromarray(values)}, None)
    frames = load_frame_folder(root, image_size=16, require_labels=False)
    expected = np.floor(values.astype(np.float64) * 255 / max(peak, 1) + 0.5)
    np.testing.assert_array_equal(frames.images[0, 0].numpy(), expected)
    assert any("16-bit" in note for note in frames.notes)


def test_rgba_drops_alpha_and_palette_is_expanded(tmp_path):
    rgba, rgba_array = noise_image("RGBA")
    palette = Image.fromarray(RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)).quantize(16)
    root = make_root(tmp_path, {"a.png": rgba, "b.png": palette}, "frame,label\na.png,0\nb.png,0\n")
    frames = load_frame_folder(root, channels=3, image_size=16)
    np.testing.assert_array_equal(frames.images[0].numpy().transpose(1, 2, 0), rgba_array[..., :3])
    expected_palette = np.asarray(palette.convert("RGB"))
    np.testing.assert_array_equal(frames.images[1].numpy().transpose(1, 2, 0), expected_palette)
    assert any("alpha" in note for note in frames.notes)
    assert any("mixed image modes" in note for note in frames.notes)


def test_mixed_sizes_are_resized_with_notes(tmp_path):
    images = {
        "a.png": gray(10, (80, 60)),
        "b.png": gray(200, (64, 64)),
        "c.png": gray(90, (20, 20)),
    }
    root = make_root(tmp_path, images, three_frames_csv())
    frames = load_frame_folder(root, image_size=64)
    assert frames.images.shape == (3, 1, 64, 64)
    # a constant image stays constant whatever the interpolation
    assert [int(frames.images[i].unique().item()) for i in range(3)] == [10, 200, 90]
    notes = " | ".join(frames.notes)
    assert "resized 1 frame from 80x60 to 64x64" in notes and "not square" in notes
    assert "resized 1 frame from 20x20 to 64x64" in notes and "differ in size" in notes


def test_downsampling_is_antialiased(tmp_path):
    stripes = np.zeros((64, 64), np.uint8)
    stripes[:, ::2] = 255  # 1-pixel stripes alias to all-black or all-white without a filter
    root = make_root(tmp_path, {"a.png": Image.fromarray(stripes)}, None)
    frames = load_frame_folder(root, image_size=16, require_labels=False)
    assert np.abs(frames.images.float().mean().item() - 127.5) < 10
    assert frames.images.float().std().item() < 20


def test_natural_order_without_labels_csv(tmp_path):
    names = ["frame_10.png", "frame_2.png", "frame_1.png", "sub/frame_3.png", "frame_21.png"]
    root = make_root(tmp_path, {name: gray(i) for i, name in enumerate(names)}, None)
    (root / "frames" / "readme.txt").write_text("not an image")
    frames = load_frame_folder(root, image_size=8, require_labels=False)
    assert frames.names == ["frame_1.png", "frame_2.png", "frame_10.png", "frame_21.png",
                            "sub/frame_3.png"]  # fmt: skip
    assert frames.labels is None
    assert frames.images[:, 0, 0, 0].tolist() == [2, 1, 0, 4, 3]
    assert frames.times.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_time_video_and_extra_columns(tmp_path):
    csv = (
        "notes,frame,video,time,label,operator\n"
        "x,b.png,scan2,0.5,1,ann\n"
        "y,a.png,scan1,0.25,-1,bob\n"
        "z,sub/c.png,scan2,3,7,ann\n"
    )
    images = {"a.png": gray(1), "b.png": gray(2), "sub/c.png": gray(3), "unused.png": gray(4)}
    frames = load_frame_folder(make_root(tmp_path, images, csv), image_size=8)
    assert frames.names == ["b.png", "a.png", "sub/c.png"]  # CSV row order, not time order
    assert frames.labels.tolist() == [1, -1, 7]
    assert frames.times.dtype == torch.float64 and frames.times.tolist() == [0.5, 0.25, 3.0]
    assert frames.group_names == ["scan2", "scan1"] and frames.groups.tolist() == [0, 1, 0]
    assert frames.images[:, 0, 0, 0].tolist() == [2, 1, 3]
    assert any("ignored 1 image" in note for note in frames.notes)


def test_subset_by_index_and_mask(tmp_path):
    csv = "frame,label,time,video\na.png,0,1,v0\nb.png,1,2,v1\nc.png,2,3,v0\n"
    images = {f"{c}.png": gray(i) for i, c in enumerate("abc")}
    frames = load_frame_folder(make_root(tmp_path, images, csv), image_size=8)
    picked = frames.subset(torch.tensor([2, 0]))
    assert len(picked) == 2 and picked.names == ["c.png", "a.png"]
    assert picked.labels.tolist() == [2, 0] and picked.times.tolist() == [3.0, 1.0]
    assert picked.groups.tolist() == [0, 0] and picked.group_names == ["v0", "v1"]
    torch.testing.assert_close(picked.images, frames.images[[2, 0]])
    masked = frames.subset(torch.tensor([False, True, True]))
    assert masked.names == ["b.png", "c.png"] and masked.labels.tolist() == [1, 2]
    assert len(frames) == 3  # the original is untouched


def test_thread_pool_keeps_csv_order(tmp_path):
    count = 500
    order = RNG.permutation(count)
    root = tmp_path / "root"
    (root / "frames").mkdir(parents=True)
    for i in range(count):
        Image.fromarray(np.full((8, 8), i % 251, np.uint8)).save(root / "frames" / f"f{i}.png")
    rows = "".join(f"f{i}.png,{i}\n" for i in order)
    (root / "labels.csv").write_text("frame,label\n" + rows)
    frames = load_frame_folder(root, image_size=8, num_workers=4)
    assert frames.labels.tolist() == order.tolist()
    assert frames.images[:, 0, 3, 3].tolist() == (order % 251).tolist()
