"""Reading frame folders, videos and query images; every bad input gives one DataError."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from fastap_lab.data.frames import load_frame_folder, load_image
from fastap_lab.data.queries import load_queries, load_query_files
from fastap_lab.data.video import load_video
from fastap_lab.errors import DataError

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


# --------------------------------------------------------------------------- decoding rules
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


# --------------------------------------------------------------------------- bad input
def truncated_png(path: Path) -> None:
    noise_image("L", 64)[0].save(path)
    path.write_bytes(path.read_bytes()[:200])


def bad_folder(tmp_path: Path, case: str) -> Path:
    """A data root broken in the way ``case`` names."""
    abc = {f"{c}.png": gray(i) for i, c in enumerate("abc")}
    csvs = {
        "labels_missing": None,
        "labels_empty": "",
        "labels_header_only": "frame,label\n",
        "no_frame_column": "name,label\na.png,0\n",
        "no_label_column": "frame,time\na.png,0\n",
        "semicolons": "frame;label\na.png;0\n",
        "duplicate": "frame,label\na.png,0\nb.png,1\na.png,2\n",
        "missing_files": "frame,label\na.png,0\nghost1.png,1\nghost2.png,1\n",
        "frames_prefix": "frame,label\nframes/a.png,0\n",
        "empty_frame": "frame,label\na.png,0\n,1\n",
        "label_text": "frame,label\na.png,0\nb.png,abc\n",
        "label_nan": "frame,label\na.png,0\nb.png,nan\n",
        "label_fraction": "frame,label\na.png,0\nb.png,1.5\n",
        "label_empty": "frame,label\na.png,0\nb.png,\n",
        "label_short_row": "frame,label\na.png,0\nb.png\n",
        "time_text": "frame,label,time\na.png,0,1\nb.png,1,soon\n",
        "time_nan": "frame,label,time\na.png,0,1\nb.png,1,NaN\n",
        "time_inf": "frame,label,time\na.png,0,1\nb.png,1,inf\n",
    }
    root = make_root(tmp_path, abc, csvs.get(case, three_frames_csv()))
    if case == "labels_binary":
        (root / "labels.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x81" * 20)
    elif case == "corrupt_image":
        (root / "frames" / "c.png").write_bytes(b"this is not a png")
    elif case == "truncated_image":
        truncated_png(root / "frames" / "b.png")
    elif case == "no_images":
        for path in (root / "frames").iterdir():
            path.rename(path.with_suffix(".gif"))
    elif case == "no_frames_dir":
        (root / "frames").rename(root / "images")
    elif case == "root_missing":
        return tmp_path / "no_such_root"
    elif case == "root_is_file":
        return root / "labels.csv"
    return root


BAD_FOLDERS = {  # case: substrings the message must contain
    "root_missing": ["no_such_root", "data.root="],
    "root_is_file": ["labels.csv", "not a folder", "data.root="],
    "no_frames_dir": ["frames/", "images"],
    "no_images": ["no images", ".png", ".tiff", ".bmp"],
    "labels_missing": ["labels.csv", "frame,label", "data.require_labels=false"],
    "labels_empty": ["labels.csv", "empty"],
    "labels_binary": ["labels.csv", "cannot read"],
    "labels_header_only": ["labels.csv", "no rows"],
    "no_frame_column": ["labels.csv", "'frame'", "found: name, label"],
    "no_label_column": ["labels.csv", "'label'", "found: frame, time", "require_labels=false"],
    "semicolons": ["labels.csv", "'frame'", "';'"],
    "duplicate": ["labels.csv", "'a.png'", "lines 2, 4"],
    "missing_files": ["labels.csv", "2 listed files", "'ghost1.png'", "'ghost2.png'"],
    "frames_prefix": ["'frames/a.png'", "relative to frames/"],
    "empty_frame": ["labels.csv", "line 3", "frame is empty"],
    "label_text": ["labels.csv", "line 3", "'b.png'", "label 'abc'"],
    "label_nan": ["labels.csv", "line 3", "'b.png'", "label 'nan'"],
    "label_fraction": ["labels.csv", "line 3", "'b.png'", "label '1.5'"],
    "label_empty": ["labels.csv", "line 3", "'b.png'", "label is empty"],
    "label_short_row": ["labels.csv", "line 3", "'b.png'", "label is empty"],
    "time_text": ["labels.csv", "line 3", "'b.png'", "time 'soon'"],
    "time_nan": ["labels.csv", "line 3", "'b.png'", "time 'NaN'"],
    "time_inf": ["labels.csv", "line 3", "'b.png'", "time 'inf'"],
    "corrupt_image": ["c.png", "cannot read"],
    "truncated_image": ["b.png", "cannot read"],
}


@pytest.mark.parametrize("case", sorted(BAD_FOLDERS))
def test_bad_folder_raises_one_clear_data_error(tmp_path, case):
    root = bad_folder(tmp_path, case)
    with pytest.raises(DataError) as raised:  # a KeyError / ValueError would fail this test
        load_frame_folder(root, image_size=8, num_workers=2)
    message = str(raised.value)
    assert type(raised.value) is DataError and "\n" not in message
    for part in BAD_FOLDERS[case]:
        assert part in message, f"{part!r} not in {message!r}"


def test_require_labels_false_tolerates_missing_label_column(tmp_path):
    root = make_root(tmp_path, {"a.png": gray(), "b.png": gray()}, "frame,time\nb.png,5\na.png,6\n")
    frames = load_frame_folder(root, image_size=8, require_labels=False)
    assert frames.labels is None and frames.names == ["b.png", "a.png"]
    assert frames.times.tolist() == [5.0, 6.0]


# --------------------------------------------------------------------------- video
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


# --------------------------------------------------------------------------- queries
def test_load_queries_orders_listed_then_unlisted_with_label_1(tmp_path):
    root = make_root(tmp_path, {"a.png": gray()}, "frame,label\na.png,0\n")
    (root / "queries").mkdir()
    rgb, rgb_array = noise_image("RGB", 20)
    rgb.save(root / "queries" / "q_rgb.png")
    gray(7).save(root / "queries" / "z_10.png")
    gray(9).save(root / "queries" / "z_9.png")
    (root / "queries.csv").write_text("query,label,comment\nq_rgb.png,3,x\n")
    queries = load_queries(root, channels=3, image_size=20)
    assert [(q.name, q.label) for q in queries] == [
        ("q_rgb.png", 3),
        ("z_9.png", 1),
        ("z_10.png", 1),
    ]
    np.testing.assert_array_equal(queries[0].image.numpy().transpose(1, 2, 0), rgb_array)
    assert queries[1].image.shape == (3, 20, 20) and int(queries[1].image.max()) == 9
    assert any("resized" in note for note in queries[1].notes)
    assert any("label 1" in note for note in queries[2].notes)
    assert load_queries(make_root(tmp_path / "other", {"a.png": gray()}, None), channels=1,
                        image_size=8) == []  # fmt: skip


@pytest.mark.parametrize(
    ("case", "expected"),
    [("missing", ["queries.csv", "'ghost.png'"]), ("corrupt", ["bad.png", "cannot read"]),
     ("no_label", ["queries.csv", "'label'", "found: query"])],
)  # fmt: skip
def test_bad_queries(tmp_path, case, expected):
    root = tmp_path
    (root / "queries").mkdir()
    gray().save(root / "queries" / "ok.png")
    if case == "corrupt":
        (root / "queries" / "bad.png").write_bytes(b"garbage")
    csv = {"missing": "query,label\nok.png,1\nghost.png,2\n", "no_label": "query\nok.png\n"}
    (root / "queries.csv").write_text(csv.get(case, "query,label\nok.png,1\n"))
    with pytest.raises(DataError) as raised:
        load_queries(root, channels=1, image_size=8)
    assert type(raised.value) is DataError
    for part in expected:
        assert part in str(raised.value)


def test_load_query_files_and_load_image(tmp_path):
    image, array = noise_image("RGBA", 12)
    image.save(tmp_path / "q.png")
    gray(50, (30, 10)).save(tmp_path / "w.bmp")
    queries = load_query_files([tmp_path / "q.png", str(tmp_path / "w.bmp")], channels=1,
                               image_size=12, labels=[5, -1])  # fmt: skip
    assert [(q.name, q.label, tuple(q.image.shape)) for q in queries] == [
        ("q.png", 5, (1, 12, 12)), ("w.bmp", -1, (1, 12, 12))]  # fmt: skip
    assert load_query_files([tmp_path / "w.bmp"], channels=3, image_size=4)[0].label == 1
    expected = np.asarray(Image.fromarray(array[..., :3]).convert("L"))
    np.testing.assert_array_equal(queries[0].image[0].numpy(), expected)
    decoded, notes = load_image(tmp_path / "w.bmp", channels=3, image_size=6)
    assert decoded.shape == (3, 6, 6) and decoded.dtype == np.uint8 and (decoded == 50).all()
    assert any("30x10" in note for note in notes)
    with pytest.raises(DataError, match="nope.png"):
        load_query_files([tmp_path / "nope.png"], channels=1, image_size=8)
    with pytest.raises(DataError, match="1 query label"):
        load_query_files([tmp_path / "q.png", tmp_path / "w.bmp"], channels=1, image_size=8,
                         labels=[1])  # fmt: skip
