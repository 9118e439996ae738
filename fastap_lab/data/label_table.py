"""labels.csv / queries.csv: parsed and validated rows (key, label, time, video), in file order.

Columns beyond those are kept when numeric: a column whose every cell is a finite number
becomes a named float column of :attr:`LabelTable.extras` (e.g. ``displacement``, the
ground-truth respiratory displacement the phantoms write). The columns of
:data:`NUMERIC_COLUMNS` must be numeric (a bad cell is an error naming its row); any other
column with a non-numeric cell (comments, file names) is ignored, never rejected.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from fastap_lab.errors import DataError

KNOWN_COLUMNS = ("label", "time", "video")  # besides the key column (frame / query)
NUMERIC_COLUMNS = ("displacement",)  # extra columns that must hold a number in every row


@dataclass
class LabelTable:
    """Validated rows of a labels.csv / queries.csv, in file order."""

    where: str  # "labels.csv (/full/path/labels.csv)", for messages
    key_column: str  # "frame" or "query"
    keys: list[str]
    labels: list[int] | None
    times: list[float] | None = None
    videos: list[str] | None = None
    lines: list[int] = field(default_factory=list)  # line number of each row in the file
    extras: dict[str, list[float]] = field(default_factory=dict)  # numeric extra columns

    @classmethod
    def from_keys(cls, path: Path, key_column: str, keys: list[str]) -> LabelTable:
        """A table without labels, as if a CSV listed ``keys`` only."""
        lines = list(range(2, len(keys) + 2))  # as if below a header line
        return cls(f"{path.name} ({path})", key_column, list(keys), None, lines=lines)


def _read_csv(path: Path, where: str, key_column: str) -> tuple[list[str], list[tuple[int, list]]]:
    """Lower-cased header and the non-blank (line number, cells) rows."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(
            f"{where}: cannot read it as CSV ({error}); save it as UTF-8 comma-separated text"
        ) from error
    if header is None or not any(cell.strip() for cell in header):
        raise DataError(f"{where}: the file is empty; write a header line {key_column},label")
    return [cell.strip().lower() for cell in header], rows


def _parse_label(raw: str, where: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        try:
            as_float = float(raw)
        except ValueError:
            as_float = math.nan
        value = int(as_float) if math.isfinite(as_float) and as_float.is_integer() else None
    if value is None or not -(2**63) <= value < 2**63:
        problem = "is empty" if not raw else f"{raw!r} is not an integer"
        raise DataError(f"{where}: label {problem}; labels must be integers (-1 is not special)")
    return value


def _finite(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _parse_number(raw: str, where: str, column: str) -> float:
    value = _finite(raw)
    if value is None:
        problem = "is empty" if not raw else f"{raw!r} is not a finite number"
        raise DataError(f"{where}: {column} {problem}; fix it or remove the '{column}' column")
    return value


def _extra_columns(
    columns: dict[str, int], key_column: str, values, at: list[str]
) -> dict[str, list[float]]:
    """The numeric extra columns {name: one float per row} (see the module docstring)."""
    extras = {}
    for name in columns:
        if not name or name == key_column or name in KNOWN_COLUMNS:
            continue
        cells = values(name)
        if name in NUMERIC_COLUMNS:
            extras[name] = [_parse_number(v, a, name) for v, a in zip(cells, at, strict=True)]
            continue
        numbers = [_finite(v) for v in cells]
        if None not in numbers:  # a text column (comments, file names): ignored
            extras[name] = numbers
    return extras


def _check_unique(keys: list[str], lines: list[int], where: str, key_column: str) -> None:
    first_line: dict[str, int] = {}
    for key, line in zip(keys, lines, strict=True):
        if key in first_line:
            repeats = [str(n) for k, n in zip(keys, lines, strict=True) if k == key]
            raise DataError(
                f"{where}: {key_column} {key!r} is listed more than once (lines "
                f"{', '.join(repeats)}); keep one row per {key_column}"
            )
        first_line[key] = line


def read_label_table(path: Path, *, key_column: str, need_label: bool) -> LabelTable:
    """Parse and validate a labels CSV (frames' labels.csv or queries.csv).

    Parse and validate a CSV with columns ``key_column``, label [, time] [, video] and any
    extra columns (kept in ``extras`` when numeric, see the module docstring).
    """
    where = f"{path.name} ({path})"
    header, rows = _read_csv(path, where, key_column)
    columns: dict[str, int] = {}
    for i, name in enumerate(header):
        columns.setdefault(name, i)
    found = ", ".join(header) + (" - separated by ';', use ','" if ";" in "".join(header) else "")
    for column, needed in ((key_column, True), ("label", need_label)):
        if needed and column not in columns:
            wants_labels = column == "label" and key_column == "frame"
            fix = " or set data.require_labels=false" if wants_labels else ""
            raise DataError(f"{where}: column '{column}' is missing (found: {found}); add it{fix}")
    if not rows:
        raise DataError(f"{where}: no rows below the header; add one row per {key_column}")

    def column_values(column: str) -> list[str]:
        i = columns[column]
        return [row[i].strip() if i < len(row) else "" for _, row in rows]

    keys = [k.removeprefix("./") for k in column_values(key_column)]
    lines = [line for line, _ in rows]
    if "" in keys:
        raise DataError(f"{where} line {lines[keys.index('')]}: {key_column} is empty; fill it")
    _check_unique(keys, lines, where, key_column)
    at = [
        f"{where} line {line}, {key_column} {key!r}" for key, line in zip(keys, lines, strict=True)
    ]
    table = LabelTable(where, key_column, keys, None, lines=lines)
    if "label" in columns:
        table.labels = [_parse_label(v, a) for v, a in zip(column_values("label"), at, strict=True)]
    if "time" in columns:
        table.times = [
            _parse_number(v, a, "time") for v, a in zip(column_values("time"), at, strict=True)
        ]
    if "video" in columns:
        table.videos = column_values("video")
    table.extras = _extra_columns(columns, key_column, column_values, at)
    return table


def frame_indices(table: LabelTable) -> list[int]:
    """The ``frame`` column as non-negative integers (one per row, all different)."""
    indices, first_line = [], {}
    for key, line in zip(table.keys, table.lines, strict=True):
        try:
            index = int(key)
        except ValueError:
            index = -1
        if index < 0:
            raise DataError(
                f"{table.where} line {line}: frame {key!r} is not a frame index; for a video, DICOM or NIfTI "
                "sequence the 'frame' column holds 0-based integer frame indices"
            )
        if index in first_line:
            raise DataError(
                f"{table.where}: frame index {index} is listed twice (lines {first_line[index]}, "
                f"{line}); keep one row per frame"
            )
        first_line[index] = line
        indices.append(index)
    return indices
