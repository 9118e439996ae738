"""data=dicom / data=nifti through the configs, the datamodule and the surrogate command (the
readers alone: tests/unit/test_nifti.py, tests/unit/test_dicom.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom.data
import pytest

from fastap_lab.build import build_datamodule
from tests.integration.test_cli_errors import _assert_one_clear_line
from tests.unit.test_nifti import write_nifti

BUNDLED = Path(pydicom.data.__file__).parent / "test_files"


@pytest.mark.parametrize("option", ["dicom", "nifti"])
def test_data_options_compose_and_set_up(option, make_cfg, tmp_path):
    path = BUNDLED / "rtdose.dcm"
    if option == "nifti":
        path = write_nifti(tmp_path / "e.nii.gz", np.random.default_rng(0).random((8, 8, 12)))
    cfg = make_cfg([f"data={option}", f"data.path={path}", "data.require_labels=false",
                    "data.fps=4", "data.split=none", "data.batch_size=4"])  # fmt: skip
    assert cfg.data.format == option and cfg.data.window == "auto"
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup()
    assert datamodule.frames.images.shape[1:] == (1, 64, 64)
    assert datamodule.frames.times[1].item() == 0.25


def breathing_nifti(folder: Path) -> tuple[Path, Path]:
    """A bright bar moving up and down (0.25 Hz at 4 fps, 30 s) in noise, and labels.csv with
    the bar's true displacement."""
    fps, count = 4.0, 120
    displacement = 0.5 + 0.5 * np.sin(2 * np.pi * 0.25 * np.arange(count) / fps)
    volume = np.random.default_rng(0).normal(0, 20, (32, 32, 1, count))
    for t, d in enumerate(displacement):
        row = int(6 + 16 * d)
        volume[:, row : row + 4, 0, t] += 1000
    path = write_nifti(folder / "breath.nii.gz", volume, zooms=(1, 1, 1, 1 / fps))
    labels = folder / "labels.csv"
    rows = [f"{t},{int(d > 0.8)},{d:.4f}" for t, d in enumerate(displacement)]
    labels.write_text("frame,label,displacement\n" + "\n".join(rows) + "\n")
    return path, labels


def test_surrogate_from_a_breathing_nifti(cli, tmp_path):
    path, labels = breathing_nifti(tmp_path)
    done = cli("surrogate", "data=nifti", f"data.path={path}", f"data.labels_csv={labels}",
               f"out={tmp_path / 'out'}")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "out" / "surrogate.json").read_text())
    assert result["abs_pearson_r"] > 0.9
    rows = (tmp_path / "out" / "surrogate.csv").read_text().splitlines()
    assert rows[1].startswith("0,0.000000,") and rows[2].startswith("1,0.250000,")


@pytest.mark.parametrize(
    ("arguments", "needles"),
    [
        (["data=dicom", f"data.path={BUNDLED / 'rtplan.dcm'}"], ["rtplan.dcm: no pixel data"]),
        (["data=dicom", f"data.path={BUNDLED / 'dicomdirtests'}"], ["13 series", "data.series="]),
        (["data=nifti", "data.path=missing.nii"], ["missing.nii does not exist"]),
        (["data=dicom"], ["data=dicom needs data.path="]),
    ],
    ids=["no_pixel_data", "several_series", "missing_nifti", "no_path"],
)
def test_bad_input_through_the_surrogate_command(cli, arguments, needles):
    _assert_one_clear_line(cli("surrogate", *arguments), *needles)
