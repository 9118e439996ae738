"""Fuzz the labels.csv / queries.csv reader: random bytes, random columns and random cells
(seeded) give either a valid table or a one-line DataError, never any other exception."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from fastap_lab.data.frames import load_frame_folder
from fastap_lab.data.label_table import read_label_table
from fastap_lab.errors import DataError

COLUMNS = [
    "frame", "label", "time", "video", "displacement", "query", "note", "", " Label ",
    "frame;label", "FRAME", "ünïcode", "label", "x,y",
]  # fmt: skip
CELLS = [
    "", "0", "1", "-1", "7", "1.0", "1.5", "-0.0", "nan", "inf", "-inf", "1e400", "9" * 5000,
    "abc", "f0.png", "f1.png", "./f2.png", "sub/../f0.png", "../f0.png", "/etc/hostname",
    "frames/f0.png", '"quoted, comma"', '"a\nb"', " 3 ", "0x10", "１", "١٢", "True", "😀",
    "\x00", "\\..\\f0.png", "f0.png\t", '"', "''", "2**63", str(2**63), str(-(2**63)),
]  # fmt: skip
FRAMES = ["f0.png", "f1.png", "f2.png"]


GOOD = {"label": ["0", "1", "-1", "7"], "time": ["0.5", "-2", "3"], "displacement": ["0.1", "2"]}


def random_cell(rng: random.Random, column: str, row: int) -> str:
    """Mostly a valid cell for ``column`` (so valid tables come out too), else any cell."""
    if rng.random() < 0.15:
        return rng.choice(CELLS)
    if column in ("frame", "query"):
        return f"f{row}.png"
    return rng.choice(GOOD.get(column, ["a", "1.5", ""]))


def random_csv(rng: random.Random, key_column: str) -> bytes:
    """Random bytes, or a header of random columns above ragged rows of random cells."""
    if rng.random() < 0.2:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
    header = [rng.choice(COLUMNS) for _ in range(rng.randrange(4))]
    if rng.random() < 0.7:
        header = rng.sample([key_column, "label", *header], k=len(header) + 2)
    rows = []
    for row in range(rng.randrange(7)):
        width = len(header) if rng.random() < 0.8 else rng.randrange(len(header) + 2)
        rows.append(
            [random_cell(rng, header[i] if i < len(header) else "", row) for i in range(width)]
        )
    text = "\n".join(",".join(row) for row in [header, *rows])
    if rng.random() < 0.2:
        text = "\ufeff" + text.replace("\n", "\r\n")  # BOM, CRLF
    return text.encode("utf-8", errors="surrogatepass")


def check_table(table) -> None:
    """A returned table is consistent: one entry per row in every column."""
    n = len(table.keys)
    assert n == len(table.lines) > 0 and "" not in table.keys
    assert len(set(table.keys)) == n
    for column in (table.labels, table.times, table.videos, *table.extras.values()):
        assert column is None or len(column) == n
    assert all(isinstance(v, float) for values in table.extras.values() for v in values)


def assert_one_line(error: DataError) -> None:
    message = str(error)
    assert message and "\n" not in message and "\r" not in message, repr(message)


@pytest.mark.parametrize("seed", range(4))
def test_label_reader_fuzz(seed, tmp_path):
    rng = random.Random(seed)
    path = tmp_path / "labels.csv"
    outcomes = {"table": 0, "error": 0}
    for _ in range(100):
        key_column, need_label = rng.choice(["frame", "query"]), rng.random() < 0.5
        path.write_bytes(random_csv(rng, key_column))
        try:
            table = read_label_table(path, key_column=key_column, need_label=need_label)
        except DataError as error:
            assert_one_line(error)
            outcomes["error"] += 1
            continue
        check_table(table)
        outcomes["table"] += 1
    assert outcomes["table"] and outcomes["error"], outcomes  # both paths were exercised


def test_frame_folder_fuzz(tmp_path):
    """The same through the frames reader (names checked against frames/, files decoded)."""
    rng = random.Random(100)
    (tmp_path / "frames").mkdir()
    for name in FRAMES:
        Image.fromarray(np.full((8, 8), 60, np.uint8)).save(tmp_path / "frames" / name)
    outcomes = {"frames": 0, "error": 0}
    for _ in range(150):
        rows = [[rng.choice([*FRAMES, *CELLS]), rng.choice(CELLS)] for _ in range(rng.randrange(4))]
        header = rng.choice(["frame,label", "frame,label,time", "frame,displacement", "frame"])
        text = "\n".join([header, *(",".join(r + [rng.choice(CELLS)]) for r in rows)])
        (tmp_path / "labels.csv").write_text(text, encoding="utf-8")
        try:
            frames = load_frame_folder(
                tmp_path, image_size=8, require_labels=rng.random() < 0.5, num_workers=1
            )
        except DataError as error:
            assert_one_line(error)
            outcomes["error"] += 1
            continue
        assert frames.images.shape[1:] == (1, 8, 8) and len(frames) == frames.images.shape[0]
        assert set(frames.names) <= {n.removeprefix("./") for n in [*FRAMES, *CELLS]}
        outcomes["frames"] += 1
    assert outcomes["frames"] and outcomes["error"], outcomes
