"""Bad frame folders: each gives one DataError whose message names the file and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastap_lab.data.frames import load_frame_folder
from fastap_lab.errors import DataError
from tests.frame_inputs import gray, make_root, noise_image, three_frames_csv


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
