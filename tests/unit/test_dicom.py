"""data=dicom on the DICOM files pydicom ships (its DICOMDIR series, multi-frame, RGB, CT with
rescale) and on files written here with pydicom for the edge cases (cine with FrameTime,
MONOCHROME1, shuffled series folder, mixed series): order, times, intensity, labels, errors."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from fastap_lab.data.dicom import load_dicom
from fastap_lab.errors import ConfigError, DataError

# pydicom's bundled files only: get_testdata_file would download a file that is not bundled.
BUNDLED = Path(pydicom.data.__file__).parent / "test_files"
MR700 = "1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.118"  # dicomdirtests/98892003/MR700


def bundled(name: str) -> Path:
    path = BUNDLED / name
    assert path.exists(), f"pydicom {pydicom.__version__} does not ship {name}"
    return path


def load(path, labels_csv=None, **settings):
    settings.setdefault("require_labels", labels_csv is not None)
    return load_dicom(path, labels_csv, **settings)


def write_dicom(path: Path, pixels: np.ndarray, photometric="MONOCHROME2", **attributes) -> Path:
    """A DICOM file of ``pixels`` (uint16 [H, W] or [F, H, W]) with these attributes."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID, dataset.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    dataset.set_pixel_data(pixels.astype(np.uint16), photometric, 12)
    for name, value in attributes.items():
        setattr(dataset, name, value)
    dataset.save_as(path, enforce_file_format=True)
    return path


def percentile_uint8(values: np.ndarray) -> np.ndarray:
    """The hand computation of the sequence-wide 0.5..99.5 percentile window."""
    low, high = np.percentile(values.astype(np.float64), [0.5, 99.5])
    return np.rint(255 * np.clip((values - low) / (high - low), 0, 1)).astype(np.uint8)


def test_dicomdir_series_in_instance_order_with_the_files_window():
    frames = load(bundled("dicomdirtests/DICOMDIR"), series=MR700, image_size=16)
    files = [pydicom.dcmread(p) for p in bundled("dicomdirtests/98892003/MR700").iterdir()]
    files.sort(key=lambda d: int(d.InstanceNumber))  # file names are not in instance order
    raw = np.stack([d.pixel_array for d in files]).astype(np.float64)
    low = 149 - 0.5 - (359 - 1) / 2  # the files' WindowCenter 149, WindowWidth 359
    expected = np.rint(255 * np.clip((raw - low) / 358, 0, 1)).astype(np.uint8)
    assert frames.images.shape == (7, 1, 16, 16)
    np.testing.assert_array_equal(frames.images[:, 0].numpy(), expected)
    assert frames.names[0] == "DICOMDIR#0" and frames.labels is None
    assert any("ordered by InstanceNumber" in n for n in frames.notes)
    folder = load(bundled("dicomdirtests/98892003/MR700"), image_size=16)  # the plain folder
    np.testing.assert_array_equal(folder.images.numpy(), frames.images.numpy())


def test_dicomdir_of_several_series_asks_for_one():
    with pytest.raises(DataError) as error:
        load(bundled("dicomdirtests/DICOMDIR"))
    message = str(error.value)
    assert "13 series" in message and "data.series=UID" in message and "\n" not in message
    assert f"{MR700} (7 files, MR" in message or "and 5 more" in message
    with pytest.raises(ConfigError, match="data.series=1.2.3: not in"):
        load(bundled("dicomdirtests/DICOMDIR"), series="1.2.3")


def test_ct_rescale_then_sequence_window(tmp_path):
    folder = tmp_path / "ct"
    folder.mkdir()
    shutil.copy(bundled("CT_small.dcm"), folder / "CT_small.dcm")
    (folder / "notes.txt").write_text("not DICOM")
    frames = load(folder, image_size=128)  # 128 px: no resizing, exact comparison
    dataset = pydicom.dcmread(bundled("CT_small.dcm"))
    hounsfield = dataset.pixel_array * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)
    np.testing.assert_array_equal(frames.images[0, 0].numpy(), percentile_uint8(hounsfield))
    assert any("percentile range of the whole sequence" in n for n in frames.notes)
    assert any("skipped 1 file that are not DICOM" in n for n in frames.notes)


def test_multiframe_rtdose_one_window_for_all_frames_and_fps():
    frames = load(bundled("rtdose.dcm"), image_size=10, fps=5)
    raw = pydicom.dcmread(bundled("rtdose.dcm")).pixel_array.astype(np.float64)
    np.testing.assert_array_equal(frames.images[:, 0].numpy(), percentile_uint8(raw))
    np.testing.assert_allclose(frames.times.numpy(), np.arange(15) / 5)
    lows = frames.images.amin(dim=(1, 2, 3))
    assert lows.min() == 0 and (lows > 0).any()  # not stretched frame by frame
    assert load(bundled("rtdose.dcm"), image_size=10).times.tolist() == list(range(15))


def test_rgb_frames_kept_as_stored():
    frames = load(bundled("SC_rgb_rle_2frame.dcm"), channels=3, image_size=100)
    rgb = pydicom.dcmread(bundled("SC_rgb_rle_2frame.dcm")).pixel_array  # [2, 100, 100, 3]
    np.testing.assert_array_equal(frames.images.numpy(), rgb.transpose(0, 3, 1, 2))
    wide = load(bundled("SC_rgb_rle_16bit_2frame.dcm"), channels=3, image_size=100)
    wide_rgb = pydicom.dcmread(bundled("SC_rgb_rle_16bit_2frame.dcm")).pixel_array
    expected = np.rint(wide_rgb / 65535 * 255).astype(np.uint8).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(wide.images.numpy(), expected)


def _cine(tmp_path, photometric="MONOCHROME2", **attributes) -> Path:
    pixels = np.stack([np.full((8, 8), 100 * i, np.uint16) for i in range(6)])
    attributes.setdefault("SeriesInstanceUID", generate_uid())
    return write_dicom(tmp_path / f"cine_{photometric}.dcm", pixels, photometric, **attributes)


def test_cine_frame_time_labels_by_index_and_monochrome1(tmp_path):
    cine = _cine(tmp_path, FrameTime=40.0, WindowCenter=250.5, WindowWidth=501)
    labels = tmp_path / "labels.csv"
    labels.write_text("frame,label\n3,1\n0,0\n5,1\n")
    frames = load(cine, labels, image_size=8)
    assert frames.names == ["cine_MONOCHROME2.dcm#3", "cine_MONOCHROME2.dcm#0",
                            "cine_MONOCHROME2.dcm#5"]  # fmt: skip
    assert frames.labels.tolist() == [1, 0, 1]
    np.testing.assert_allclose(frames.times.numpy(), [0.12, 0.0, 0.2])
    # window 0..500: 300 -> 153, 0 -> 0, 500 -> 255
    assert frames.images[:, 0, 0, 0].tolist() == [153, 0, 255]
    inverted = load(_cine(tmp_path, "MONOCHROME1", FrameTime=40.0), image_size=8)
    normal = load(_cine(tmp_path, FrameTime=40.0), image_size=8)
    assert (inverted.images == 255 - normal.images).all()
    vector = load(_cine(tmp_path, FrameTimeVector=[0, 10, 10, 20, 20, 40]), image_size=8)
    np.testing.assert_allclose(vector.times.numpy(), [0, 0.01, 0.02, 0.04, 0.06, 0.1])


def test_shuffled_series_folder_reordered_by_instance_number(tmp_path):
    series = generate_uid()
    for position, number in enumerate([3, 1, 4, 2]):  # file names out of instance order
        write_dicom(tmp_path / f"im{position}.dcm", np.full((4, 4), 10 * number), InstanceNumber=number,
                    SeriesInstanceUID=series, ContentTime=f"1200{number:02d}")  # fmt: skip
    frames = load(tmp_path, image_size=4, window="minmax")
    assert frames.images[:, 0, 0, 0].tolist() == [0, 85, 170, 255]
    np.testing.assert_allclose(frames.times.numpy(), [0, 1, 2, 3])  # ContentTime, seconds
    other = generate_uid()
    write_dicom(tmp_path / "other.dcm", np.zeros((4, 4)), InstanceNumber=1, SeriesInstanceUID=other)
    with pytest.raises(DataError) as error:
        load(tmp_path)
    assert "mixed series" in str(error.value) and series in str(error.value)
    assert other in str(error.value) and "data.series=UID" in str(error.value)
    assert len(load(tmp_path, series=series, image_size=4)) == 4


def test_windows_given_on_the_command_line(tmp_path):
    cine = _cine(tmp_path)
    assert load(cine, image_size=8, window=[250.5, 501]).images[:, 0, 0, 0].tolist()[3] == 153
    with pytest.raises(DataError, match="data.window=file but the file has no display window"):
        load(cine, window="file")
    with pytest.raises(ConfigError, match=r"data.window='wide': choose one of"):
        load(cine, window="wide")


@pytest.mark.parametrize(
    ("name", "needles"),
    [
        ("rtplan.dcm", ["rtplan.dcm: no pixel data (RT Plan Storage)"]),
        ("no_meta.dcm", ["no_meta.dcm: not a DICOM file"]),
        ("missing.dcm", ["missing.dcm does not exist"]),
    ],
)
def test_bad_input_is_one_line(name, needles, tmp_path):
    path = BUNDLED / name if (BUNDLED / name).exists() else tmp_path / name
    with pytest.raises(DataError) as error:
        load(path)
    assert "\n" not in str(error.value)
    for needle in needles:
        assert needle in str(error.value)


def test_compressed_without_decoder_names_the_package():
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSNearLossless

    if get_decoder(JPEGLSNearLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed here")
    with pytest.raises(DataError) as error:
        load(bundled("JPEGLSNearLossless_08.dcm"))
    message = str(error.value)
    assert "JPEG-LS" in message and "no decoder" in message and "pip install" in message
    assert "pylibjpeg" in message and "\n" not in message


def test_without_pydicom_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydicom", None)  # import pydicom raises ImportError
    with pytest.raises(DataError, match="pip install pydicom"):
        load(bundled("MR_small.dcm"))
