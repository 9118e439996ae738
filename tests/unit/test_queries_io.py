"""Reading query images: listed then unlisted order, bad query folders, single files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fastap_lab.data.frames import load_image
from fastap_lab.data.queries import load_queries, load_query_files
from fastap_lab.errors import DataError
from tests.frame_inputs import gray, make_root, noise_image


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
