"""An evaluated run as tensors: every frame's embedding, label, time, video and split.

Reads what ``python -m fastap_lab.evaluate`` (or the evaluation at the end of
``python -m fastap_lab.train``) wrote: ``embeddings.npy``, ``frames.csv``, ``metrics.json`` of
a run's newest ``inference[-N]/`` folder, or of an evaluation folder given directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fastap_lab.data.frames import FrameSet, load_frame_folder
from fastap_lab.data.sources import load_source
from fastap_lab.errors import DataError
from fastap_lab.report.collect import Evaluation, Run, load_run, read_csv
from fastap_lab.runs import run_folders


@dataclass
class RunEmbeddings:
    """One evaluation of one run. Tensors are on CPU, rows in frames.csv order.

    Attributes:
        embeddings: float32 [N, D], L2-normalised.
        labels: long [N] or None (unlabelled data).
        times: float64 [N]; videos: long [N] group ids (order of first appearance).
        evaluated: bool [N], the frames the metrics were computed on (e.g. the held-out split).
    """

    name: str
    run: Run
    evaluation: Evaluation
    embeddings: torch.Tensor
    labels: torch.Tensor | None
    times: torch.Tensor
    videos: torch.Tensor
    frame_names: list[str]
    evaluated: torch.Tensor
    _frames: FrameSet | None = field(default=None, repr=False)

    @property
    def metrics(self) -> dict:
        """The run's mean evaluation metrics (metrics.json's ``metrics``; empty when absent)."""
        return self.evaluation.metrics.get("metrics") or {}

    @property
    def exclusion_window(self) -> float:
        """The temporal exclusion window the evaluation used (0.0 when absent)."""
        return float(self.evaluation.metrics.get("exclusion_window") or 0.0)

    def frames(self) -> FrameSet:
        """The decoded frames (uint8 [N, C, H, W]) the embeddings were computed from."""
        if self._frames is None:
            record = self.evaluation.metrics
            data = self.run.config.get("data", {})
            size = record.get("image_size") or data.get("image_size") or 64
            channels = record.get("channels") or data.get("channels") or 1
            decode = {"channels": channels, "image_size": size,
                      "require_labels": self.labels is not None}  # fmt: skip
            if data.get("video") or data.get("path"):  # data_root is then the file's folder
                keys = ("video", "labels_csv", "path", "format", "series", "window", "slice", "fps")
                self._frames = load_source(**{k: data[k] for k in keys if k in data}, **decode)
            else:
                self._frames = load_frame_folder(record["data_root"], **decode)
        return self._frames


def load_embeddings(path: str | Path, name: str | None = None) -> RunEmbeddings:
    """A run folder (its newest evaluation) or an evaluation folder, as :class:`RunEmbeddings`."""
    run = load_run(path, with_parent=False)
    if run.evaluation is None or not (run.evaluation.path / "embeddings.npy").is_file():
        raise DataError(
            f"{path}: no evaluation with embeddings.npy; run"
            f" python -m fastap_lab.evaluate ckpt_path={path} first"
        )
    folder = run.evaluation.path
    rows = _read_frames_csv(folder / "frames.csv")
    embeddings = torch.from_numpy(np.load(folder / "embeddings.npy", allow_pickle=False))
    split = run.evaluation.metrics.get("split", "all")
    videos = {v: i for i, v in enumerate(dict.fromkeys(r["video"] for r in rows))}
    labels = [r["label"] for r in rows]
    return RunEmbeddings(
        name=name or f"{run.path.parent.name}/{run.path.name}",
        run=run,
        evaluation=run.evaluation,
        embeddings=embeddings.float(),
        labels=None if "" in labels else torch.tensor([int(v) for v in labels]),
        times=torch.tensor([float(r["time"]) for r in rows], dtype=torch.float64),
        videos=torch.tensor([videos[r["video"]] for r in rows]),
        frame_names=[r["frame"] for r in rows],
        evaluated=torch.tensor([split == "all" or r["split"] == split for r in rows]),
    )


def _read_frames_csv(path: Path) -> list[dict]:
    rows = read_csv(path)
    if not rows:
        raise DataError(f"{path}: missing or empty; re-run python -m fastap_lab.evaluate")
    return rows


def latest_run(experiment: str, outputs: str | Path = "outputs") -> Path:
    """The newest run folder ``outputs/<experiment>/<time>`` that has an evaluation."""
    folders = [run.path for run in run_folders(Path(outputs, experiment)) if run.evaluations]
    if not folders:
        raise DataError(
            f"{Path(outputs, experiment)}: no evaluated run; train one with"
            f" python -m fastap_lab.train +experiment={experiment}"
        )
    return folders[-1]


def markdown_table(rows: list[dict], digits: int = 3) -> str:
    """A list of same-keyed dicts as a Markdown table (floats rounded to ``digits``)."""
    if not rows:
        return ""
    header = list(rows[0])

    def cell(value) -> str:
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(row[key]) for key in header) + " |" for row in rows]
    return "\n".join(lines)
