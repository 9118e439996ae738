"""data=nifti on files written here with nibabel (2-D + t, 3-D + t, bad shapes), the data=dicom /
data=nifti configs through the datamodule, and the entry points end to end: a surrogate from a
breathing NIfTI, bad DICOM / NIfTI input as one line with exit code 2."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom.data
import pytest

from fastap_lab.data.nifti import load_nifti
from fastap_lab.errors import ConfigError, DataError

BUNDLED = Path(pydicom.data.__file__).parent / "test_files"


def write_nifti(path: Path, volume: np.ndarray, zooms=None, unit="sec", cal=None) -> Path:
    image = nib.Nifti1Image(volume.astype(np.float32), np.eye(4))
    if zooms is not None:
        image.header.set_zooms(zooms)
    image.header.set_xyzt_units("mm", unit)
    if cal is not None:
        image.header["cal_min"], image.header["cal_max"] = cal
    nib.save(image, path)
    return path


def load(path, labels_csv=None, **settings):
    settings.setdefault("require_labels", labels_csv is not None)
    return load_nifti(path, labels_csv, **settings)


def test_2d_plus_t_orientation_fps_and_sequence_window(tmp_path):
    volume = np.zeros((6, 4, 5))  # x, y, t
    volume[2, 0, :] = np.arange(1, 6)  # x=2, y=0: the bottom row as viewers show it
    frames = load(write_nifti(tmp_path / "a.nii.gz", volume), image_size=4, fps=10,
                  window="minmax")  # fmt: skip
    assert frames.images.shape == (5, 1, 4, 4)  # resized from 6x4; the bright voxel only
    native = load(tmp_path / "a.nii.gz", window="minmax", image_size=6)
    assert native.images.shape == (5, 1, 6, 6) and len(frames) == 5
    # image_size=6 stretches 4 rows to 6; its bottom row is y=0; values t+1 of max 5
    bottom = native.images[:, 0, -1].numpy()
    assert bottom.argmax(axis=1).tolist() == [2] * 5
    assert bottom.max(axis=1).tolist() == [51, 102, 153, 204, 255]  # one range for all frames
    np.testing.assert_allclose(frames.times.numpy(), np.arange(5) / 10)
    assert any("3-D file: its third axis is time" in n for n in frames.notes)


def test_header_time_step_in_msec_and_cal_window(tmp_path):
    volume = np.stack([np.full((4, 4, 1), value) for value in (0, 50, 200)], axis=-1)
    path = write_nifti(tmp_path / "b.nii", volume, zooms=(1, 1, 1, 250), unit="msec",
                       cal=(0, 100))  # fmt: skip
    frames = load(path, image_size=4)
    np.testing.assert_allclose(frames.times.numpy(), [0, 0.25, 0.5])
    assert frames.images[:, 0, 0, 0].tolist() == [0, 128, 255]  # cal 0..100, not the data's
    assert any("cal_min..cal_max" in n for n in frames.notes)


def test_3d_plus_t_needs_a_slice_in_range(tmp_path):
    volume = np.zeros((4, 4, 3, 2))
    volume[:, :, 1, :] = 7.0
    path = write_nifti(tmp_path / "c.nii.gz", volume, zooms=(1, 1, 1, 0.5))
    with pytest.raises(ConfigError, match=r"pick the z slice with data.slice=K, K in 0..2"):
        load(path)
    with pytest.raises(ConfigError, match=r"data.slice=3: out of range .* give 0..2"):
        load(path, slice_index=3)
    labels = tmp_path / "labels.csv"
    labels.write_text("frame,label\n1,1\n")
    frames = load(path, labels, slice_index=1, image_size=4, window="minmax")
    assert frames.names == ["c.nii.gz#1"] and frames.labels.tolist() == [1]
    assert frames.times.tolist() == [0.5] and "slice z=1 of 3" in frames.notes


@pytest.mark.parametrize(
    ("shape", "needle"), [((5, 5), "is not a sequence"), ((4, 4, 2, 2, 3), "is not a sequence")]
)
def test_shapes_that_are_not_sequences(tmp_path, shape, needle):
    with pytest.raises(DataError, match=needle):
        load(write_nifti(tmp_path / "d.nii", np.zeros(shape)))


def test_not_nifti_and_missing(tmp_path):
    (tmp_path / "x.nii").write_text("hello")
    with pytest.raises(DataError, match="not a NIfTI file"):
        load(tmp_path / "x.nii")
    with pytest.raises(DataError, match="y.nii does not exist"):
        load(tmp_path / "y.nii")
