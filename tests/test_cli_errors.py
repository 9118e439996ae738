"""Bad input through the train command: one clear line, exit != 0, no traceback."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TINY


def _frames_folder(root, header="frame,label", rows=None):
    (root / "frames").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / "frames" / f"f{i}.png")
    rows = rows if rows is not None else [f"f{i}.png,{i % 2}" for i in range(4)]
    (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    return root


def _assert_one_clear_line(done, *needles):
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    text = done.stderr + done.stdout
    for needle in needles:
        assert needle in text, text[-2000:]


def test_frames_without_root(cli):
    done = cli("train", "data=frames")
    _assert_one_clear_line(done, "error: data.root is not set")
    assert done.returncode == 2


def test_video_without_file(cli):
    _assert_one_clear_line(cli("train", "data=video"), "error: data.root is not set", "data.video=")


def test_root_that_does_not_exist(cli, tmp_path):
    done = cli("train", "data=frames", f"data.root={tmp_path / 'nowhere'}")
    _assert_one_clear_line(done, "error:", "nowhere")


@pytest.mark.parametrize(
    ("header", "rows", "needle"),
    [
        ("frame,time", None, "label"),
        ("frame,label", ["f0.png,1", "f1.png,x"], "'x'"),
        ("frame,label", ["f0.png,1", "missing.png,0"], "missing.png"),
    ],
)
def test_bad_labels_csv(cli, tmp_path, header, rows, needle):
    if header == "frame,time":
        rows = [f"f{i}.png,{i}" for i in range(4)]
    root = _frames_folder(tmp_path / "data", header, rows)
    done = cli("train", "data=frames", f"data.root={root}", "debug=fast_dev_run")
    _assert_one_clear_line(done, "error:", "labels.csv", needle)


def test_batch_larger_than_data(cli):
    done = cli("train", *TINY, "data.batch_size=4096")
    _assert_one_clear_line(done, "error: data.batch_size=4096", "data.drop_last")


def test_unknown_group_option_and_key(cli):
    done = cli("train", "model=nonexistent_model")
    _assert_one_clear_line(done, "nonexistent_model")
    done = cli("train", "data.no_such_field=3")
    _assert_one_clear_line(done, "no_such_field")


def test_unknown_experiment(cli):
    done = cli("train", "+experiment=not_an_experiment")
    _assert_one_clear_line(done, "not_an_experiment")
