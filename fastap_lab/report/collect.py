"""Read a run folder into plain Python: its config, per-epoch training log, newest evaluation.

A run folder is what ``python -m fastap_lab.train`` leaves (``config.yaml``, ``metrics.csv``,
``checkpoints/``); its evaluation is the newest ``inference[-N]/`` written by
``python -m fastap_lab.evaluate``. Every piece except ``config.yaml`` may be missing: the
report then gets shorter, it never fails. :func:`evaluated_run` evaluates a run that has none
first (``--evaluate`` of the report, and the comparison of two runs).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fastap_lab.errors import DataError
from fastap_lab.runs import EVALUATION_RECORD, RunFolder, run_of_checkpoint


@dataclass
class Evaluation:
    """The files of one ``inference[-N]/`` folder (absent files: None / empty)."""

    path: Path
    metrics: dict
    per_query: list[dict] = field(default_factory=list)
    tables: dict[str, list[dict]] = field(default_factory=dict)
    diagnostics: dict | None = None
    embedding_std: float | None = None


@dataclass
class Run:
    """A training run folder and what was measured on it."""

    path: Path
    config: dict
    epochs: list[dict]
    evaluation: Evaluation | None
    parent: Run | None = None

    @property
    def name(self) -> str:
        """The run folder's name."""
        return self.path.name

    @property
    def stage(self) -> str:
        """The run's stage (or, for a bare evaluation, what was evaluated).

        ``fastap`` or ``simsiam`` from the model class the run was built with; for a bare
        evaluation folder its metrics.json's stage or baseline kind (``pixels``, ``untrained``).
        """
        if not self.config and self.evaluation is not None:
            metrics = self.evaluation.metrics
            return str(metrics.get("stage") or metrics.get("model") or "evaluation")
        target = str(self.config.get("model", {}).get("_target_", ""))
        return "fastap" if "FastAP" in target else "simsiam"

    @property
    def unfinished(self) -> tuple[int, int | None] | None:
        """How far an unfinished training run got, or None.

        (epochs in metrics.csv, trainer.max_epochs) of a training run without the FINISHED
        marker (still training, interrupted or failed); None when finished or not a run.
        """
        if not self.config or RunFolder(self.path).finished:
            return None
        return len(self.epochs), self.config.get("trainer", {}).get("max_epochs")

    @property
    def checkpoint(self) -> Path | None:
        """The run's ``checkpoints/last.ckpt``, else ``best.ckpt``, else None."""
        return RunFolder(self.path).checkpoint()


def load_run(path: str | Path, *, with_parent: bool = True) -> Run:
    """The run at ``path``; for a FastAP run also its SimSiam parent (``model.pretrained``)."""
    path = Path(path).expanduser()
    folder = RunFolder(path)
    if not path.is_dir():
        raise DataError(f"{path}: no such run folder; give a folder under outputs/<experiment>/")
    if not folder.is_run and (path / EVALUATION_RECORD).is_file():
        # an evaluation folder (inference/, or outputs/evaluate/<time> of a pixels / untrained
        # baseline): metrics and tables, no training
        return Run(path, {}, [], read_evaluation_folder(path))
    if not folder.is_run:
        raise DataError(
            f"{path}: not a run folder (no config.yaml, no metrics.json); give a folder written"
            " by python -m fastap_lab.train (e.g. outputs/fastap10/<run>) or by"
            " python -m fastap_lab.evaluate"
        )
    config = folder.config or {}
    run = Run(path, config, folder.epochs(), read_evaluation(path))
    if with_parent and run.stage == "fastap":
        run.parent = _parent_run(config.get("model", {}).get("pretrained"))
    return run


def evaluated_run(path: str | Path, *, with_parent: bool = True) -> Run:
    """:func:`load_run`, evaluating the run first when it has a checkpoint but no evaluation.

    The evaluation is ``python -m fastap_lab.evaluate ckpt_path=<run>``'s, into a new
    ``<run>/inference[-N]/``; a run without a checkpoint is returned as it is.
    """
    run = load_run(path, with_parent=with_parent)
    if run.evaluation is None and run.checkpoint is not None:
        from fastap_lab.report.evaluating import evaluate_run  # Hydra, torch: only when needed

        evaluate_run(run.path)
        run = load_run(path, with_parent=with_parent)
    return run


def _parent_run(pretrained) -> Run | None:
    """The run folder of a ``model.pretrained`` path (a run folder or its checkpoint file)."""
    if not pretrained:
        return None
    path = Path(str(pretrained))
    folder = run_of_checkpoint(path) if path.suffix == ".ckpt" else path
    if not RunFolder(folder).is_run:
        return None
    return load_run(folder, with_parent=False)


def newest_inference(run_dir: Path) -> Path | None:
    """``inference`` or the highest-numbered ``inference-N`` holding a metrics.json.

    :attr:`fastap_lab.runs.RunFolder.newest_evaluation`, kept for the tests that use it.
    """
    return RunFolder(run_dir).newest_evaluation


def read_evaluation(run_dir: Path) -> Evaluation | None:
    """The newest evaluation of ``run_dir`` (:func:`newest_inference`), or None."""
    folder = newest_inference(run_dir)
    return None if folder is None else read_evaluation_folder(folder)


def read_evaluation_folder(folder: Path) -> Evaluation:
    """The files ``python -m fastap_lab.evaluate`` wrote into ``folder``."""
    diagnostics = folder / "diagnostics.json"
    return Evaluation(
        path=folder,
        metrics=json.loads((folder / EVALUATION_RECORD).read_text()),
        per_query=read_csv(folder / "per_query.csv"),
        tables={p.stem: read_csv(p) for p in sorted((folder / "tables").glob("*.csv"))},
        diagnostics=json.loads(diagnostics.read_text()) if diagnostics.is_file() else None,
        embedding_std=_embedding_std(folder / "embeddings.npy"),
    )


def read_csv(path: Path) -> list[dict]:
    """The rows of a CSV file as dicts of strings; [] when there is no such file."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _embedding_std(path: Path) -> float | None:
    """Mean over dimensions of the per-dimension std of every frame's embedding."""
    if not path.is_file():
        return None
    embeddings = np.load(path, allow_pickle=False)
    return float(embeddings.std(axis=0).mean()) if len(embeddings) > 1 else None


def number(value) -> float:
    """A CSV / JSON cell as a float (empty / None -> NaN)."""
    if value is None or value == "":
        return math.nan
    return float(value)
