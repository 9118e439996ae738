"""Run folders: when a run counts as finished, and never writing into an existing run.

A run is *finished* only when it says so: ``<run>/FINISHED`` is written (atomically) as the
very last step of ``python -m fastap_lab.train``, after the checkpoints, the post-train
evaluation and ``result.json``. A run that was interrupted (Ctrl-C, a kill, an error), or is
still training, has no marker: ``${latest_checkpoint:…}`` does not chain from it, the sweep
summary does not count it as done and ``python -m fastap_lab.report`` says it is unfinished.

:func:`fresh_folder_problem` says when a run / sweep folder already holds files; the Hydra
callback :class:`fastap_lab.hydra_callbacks.FreshRunFolder` (``conf/hydra/default.yaml``) refuses
such a ``hydra.run.dir`` / ``hydra.sweep.dir`` before Hydra writes into it: one folder never mixes
two runs.

:class:`RunFolder` is the one reader of a run folder's files: ``config.yaml``, the per-epoch
``metrics.csv``, the evaluations ``inference[-N]/`` (:func:`numbered_folders`), ``result.json``,
``error.txt`` and ``FINISHED``. The report, the sweep summary, compare, analysis, the epoch-time
bench and ``${latest_checkpoint:…}`` read those facts through it. Pure (no Hydra, no Lightning).
"""

from __future__ import annotations

import csv
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import yaml

from fastap_lab import io

FINISHED = "FINISHED"
METRICS_CSV = "metrics.csv"  # Lightning's CSVLogger file in the run folder
CONFIG = "config.yaml"  # the effective, resolved config train saves
RESULT = "result.json"  # the optimised metric train returns
ERROR_FILE = "error.txt"  # a failed job's error (fastap_lab.cli)
EVALUATION = "inference"  # evaluations: inference/, inference-2/, …
EVALUATION_RECORD = "metrics.json"  # written last into an evaluation folder
CHECKPOINTS = "checkpoints"


def run_containing(checkpoint: str | Path) -> Path | None:
    """``<run>`` for a checkpoint file ``<run>/checkpoints/*.ckpt``, else None."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS else None


def run_of_checkpoint(path: str | Path) -> Path:
    """The run folder of a checkpoint: ``<run>`` for ``<run>/checkpoints/*.ckpt``.

    A checkpoint kept elsewhere belongs to its own folder; a folder is its own run.
    """
    path = Path(path)
    if path.is_dir():
        return path
    return run_containing(path) or path.parent


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


def numbered_folders(parent: Path, base: str, required: str) -> list[Path]:
    """The numbered output folders of ``parent / base`` that hold ``required``.

    The folders :func:`fastap_lab.evaluation.report.claim_output_dir` made for ``parent / base``
    (``base``, ``base-2``, …) that hold the file ``required``, oldest (lowest number) first.
    """
    found = []
    for candidate in Path(parent).glob(f"{base}*"):
        match = re.fullmatch(rf"{re.escape(base)}(?:-(\d+))?", candidate.name)
        if match and (candidate / required).is_file():
            found.append((int(match.group(1) or 1), candidate))
    return [folder for _, folder in sorted(found)]


class RunFolder:
    """What a run folder holds, read from its files each time they are asked for.

    Every piece may be missing (a run still training, interrupted, failed, or an evaluation
    folder given instead of a run): absent files read as None / [] and never raise.

    Args:
        path: the run folder (``outputs/<experiment>/<time>``, or a sweep job's folder).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        """``RunFolder('<path>')``."""
        return f"RunFolder({str(self.path)!r})"

    @property
    def name(self) -> str:
        """The folder's name (a run's start time stamp)."""
        return self.path.name

    @property
    def is_run(self) -> bool:
        """Whether the folder is a training run's (it holds ``config.yaml``)."""
        return (self.path / CONFIG).is_file()

    @property
    def config(self) -> dict | None:
        """``config.yaml`` as a plain dict ({} when empty), or None without one."""
        path = self.path / CONFIG
        return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else None

    @property
    def metrics_csv(self) -> Path:
        """Where the run's per-epoch ``metrics.csv`` is (it may not exist yet)."""
        return self.path / METRICS_CSV

    def epochs(self, require: str | None = "train/loss") -> list[dict]:
        """One dict per epoch of ``metrics.csv`` that has ``require`` (:func:`read_epochs`)."""
        return read_epochs(self.metrics_csv, require=require)

    @property
    def finished(self) -> bool:
        """Whether the run ended (:func:`is_finished`)."""
        return is_finished(self.path)

    @property
    def finished_record(self) -> dict | None:
        """The FINISHED marker's content (:func:`finished_record`); None while unfinished."""
        return finished_record(self.path)

    @property
    def result(self) -> dict | None:
        """``result.json`` (the optimised metric and its value), or None without one."""
        path = self.path / RESULT
        return json.loads(path.read_text()) if path.is_file() else None

    @property
    def error(self) -> str | None:
        """The first line of a failed job's ``error.txt`` ("" when empty), or None."""
        path = self.path / ERROR_FILE
        if not path.is_file():
            return None
        return path.read_text().splitlines()[0] if path.stat().st_size else ""

    @property
    def evaluations(self) -> list[Path]:
        """The ``inference[-N]/`` folders that hold a metrics.json, oldest first."""
        return numbered_folders(self.path, EVALUATION, EVALUATION_RECORD)

    @property
    def newest_evaluation(self) -> Path | None:
        """The highest-numbered ``inference[-N]/`` holding a metrics.json, or None."""
        found = self.evaluations
        return found[-1] if found else None

    def checkpoint(self, names: tuple[str, ...] = ("last.ckpt", "best.ckpt")) -> Path | None:
        """The first of ``checkpoints/<names>`` that exists, or None."""
        for name in names:
            if (self.path / CHECKPOINTS / name).is_file():
                return self.path / CHECKPOINTS / name
        return None


def run_folders(parent: str | Path) -> list[RunFolder]:
    """The sub-folders of ``parent`` (an experiment's outputs) as runs, oldest first.

    Run folders are named by their start time, so name order is time order; [] when ``parent``
    does not exist.
    """
    parent = Path(parent)
    if not parent.is_dir():
        return []
    return [RunFolder(p) for p in sorted(parent.iterdir()) if p.is_dir()]
