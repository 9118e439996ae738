"""Bad input through the train command: one clear line, exit code 2, no traceback.

The shape the README documents: the command ends with exactly one ``error: …`` line on stderr
(Lightning's own log lines may precede it) and exits 2. Hydra's composition errors (an unknown
group option or key) are Hydra's: exit code 1, its own short message, no traceback.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fastap_lab.cli import EXIT_USER_ERROR
from tests.conftest import TINY

HYDRA_COMPOSITION_EXIT = 1


def _frames_folder(root, header="frame,label", rows=None):
    (root / "frames").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / "frames" / f"f{i}.png")
    rows = rows if rows is not None else [f"f{i}.png,{i % 2}" for i in range(4)]
    (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    return root


def _assert_one_clear_line(done, *needles):
    """Exit code 2; the last stderr line is the only ``error:`` line and holds every needle."""
    text = done.stderr + done.stdout
    assert done.returncode == EXIT_USER_ERROR, text[-2000:]
    assert "Traceback" not in text
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], text[-2000:]
    assert "error:" not in done.stdout
    for needle in needles:
        assert needle in errors[0], errors[0]


def _assert_hydra_composition_error(done, *needles):
    """Hydra's own refusal: exit code 1, no traceback, not reported twice as ours."""
    text = done.stderr + done.stdout
    assert done.returncode == HYDRA_COMPOSITION_EXIT, text[-2000:]
    assert "Traceback" not in text and "error:" not in text
    for needle in needles:
        assert needle in done.stderr, text[-2000:]


def test_frames_without_root(cli):
    done = cli("train", "data=frames")
    _assert_one_clear_line(done, "error: data.root is not set")


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
    _assert_hydra_composition_error(done, "nonexistent_model")
    done = cli("train", "data.no_such_field=3")
    _assert_hydra_composition_error(done, "no_such_field")


def test_unknown_experiment(cli):
    done = cli("train", "+experiment=not_an_experiment")
    _assert_hydra_composition_error(done, "not_an_experiment")
