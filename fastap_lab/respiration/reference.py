"""What labels.csv says about time and the true respiratory displacement.

Beyond the frames reader: is there a ``time`` column, and the ground-truth respiratory
``displacement`` (phantoms write it) to score a surrogate against.

One small function on purpose: when the frames reader exposes extra columns itself, only
:func:`read_reference` changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fastap_lab.data.label_table import _read_csv
from fastap_lab.errors import DataError

DISPLACEMENT = "displacement"


@dataclass
class Reference:
    """Whether labels.csv has times, and its displacement column.

    ``has_time``: labels.csv has a ``time`` column; ``displacement`` float64 [N] in labels.csv
    row order (the FrameSet's order), or None when the column is absent.
    """

    has_time: bool
    displacement: np.ndarray | None


def read_reference(labels_csv: Path | None) -> Reference:
    """Read ``time`` presence and the ``displacement`` column; no file: neither."""
    if labels_csv is None or not Path(labels_csv).is_file():
        return Reference(has_time=False, displacement=None)
    path = Path(labels_csv)
    where = f"{path.name} ({path})"
    header, rows = _read_csv(path, where, "frame")
    if DISPLACEMENT not in header:
        return Reference(has_time="time" in header, displacement=None)
    column, key = header.index(DISPLACEMENT), header.index("frame") if "frame" in header else 0
    values = []
    for line, row in rows:
        raw = row[column].strip() if column < len(row) else ""
        values.append(_number(raw, f"{where} line {line}, frame {row[key].strip()!r}"))
    return Reference(has_time="time" in header, displacement=np.asarray(values, dtype=np.float64))


def _number(raw: str, at: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        problem = "is empty" if not raw else f"{raw!r} is not a finite number"
        raise DataError(
            f"{at}: displacement {problem}; fix it or remove the '{DISPLACEMENT}' column"
        )
    return value
