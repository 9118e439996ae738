"""Run folders: when a run counts as finished, and never writing into an existing run.

A run is *finished* only when it says so: ``<run>/FINISHED`` is written (atomically) as the
very last step of ``python -m fastap_lab.train``, after the checkpoints, the post-train
evaluation and ``result.json``. A run that was interrupted (Ctrl-C, a kill, an error), or is
still training, has no marker: ``${latest_checkpoint:…}`` does not chain from it, the sweep
summary does not count it as done and ``python -m fastap_lab.report`` says it is unfinished.

:func:`fresh_folder_problem` says when a run / sweep folder already holds files; the Hydra
callback :class:`fastap_lab.hydra_callbacks.FreshRunFolder` (``conf/hydra/default.yaml``) refuses
such a ``hydra.run.dir`` / ``hydra.sweep.dir`` before Hydra writes into it: one folder never mixes
two runs. Pure (no Hydra, no Lightning).
"""

from __future__ import annotations

import csv
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from fastap_lab import io

FINISHED = "FINISHED"
METRICS_CSV = "metrics.csv"  # Lightning's CSVLogger file in the run folder


def mark_finished(run_dir: str | Path, epochs: int, max_epochs: int | None) -> Path:
    """Write ``<run_dir>/FINISHED`` (call it last): epochs trained, planned, UTC time."""
    record = {
        "epochs": int(epochs),
        "max_epochs": max_epochs,
        "utc_time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return io.write_json(Path(run_dir) / FINISHED, record)


def is_finished(run_dir: str | Path) -> bool:
    """Whether the run in ``run_dir`` ended (it carries the FINISHED marker)."""
    return (Path(run_dir) / FINISHED).is_file()


def finished_record(run_dir: str | Path) -> dict | None:
    """The marker's content, or None for an unfinished run (an unreadable marker: {})."""
    path = Path(run_dir) / FINISHED
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def fresh_folder_problem(folder: Path, key: str) -> str | None:
    """Why ``folder`` cannot be a new run folder, or None when it can.

    It cannot when it holds files or cannot be created. Creates it (empty) when missing, so a read-only parent shows up here.
    """
    if folder.exists() and not folder.is_dir():
        return f"{key}={folder}: a file, not a folder; give a new folder (or leave {key} unset)"
    if folder.is_dir() and any(folder.iterdir()):
        return (
            f"{key}={folder}: the folder already holds files (an earlier run?); runs never write"
            f" into an existing folder: leave {key} unset (a new time-stamped folder) or give a"
            " new one; to continue a run use ckpt_path=<that run> (it writes a new folder)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return (
            f"{key}={folder}: cannot create the run folder ({exc.strerror}); make outputs/"
            f" writable, run from a folder you can write to, or set {key}=/a/writable/folder"
        )
    return None


RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


def is_first_process() -> bool:
    """False in the processes of a distributed run other than global rank 0."""
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)


def read_epochs(run: str | Path, require: str | None = "train/loss") -> list[dict]:
    """One dict per epoch from a run's metrics.csv.

    One dict per epoch (``epoch`` + every logged value, float) from a run's ``metrics.csv``
    (``run``: the run folder or the file). Lightning writes a row per logging step and leaves the
    other columns empty: rows of one epoch are merged, empty cells dropped. Only epochs that have
    ``require`` (None: all) are returned, in epoch order; no file: [].
    """
    path = Path(run)
    path = path / METRICS_CSV if path.is_dir() else path
    if not path.is_file():
        return []
    epochs: dict[int, dict] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            values = {k: float(v) for k, v in row.items() if k not in ("epoch", "step") and v}
            if row.get("epoch"):
                epochs.setdefault(int(float(row["epoch"])), {}).update(values)
    return [
        {"epoch": e, **epochs[e]} for e in sorted(epochs) if require is None or require in epochs[e]
    ]
