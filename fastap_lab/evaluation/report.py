"""Output files of an evaluation: where they go, frames.csv, per_query.csv, JSON hygiene."""

from __future__ import annotations

import csv
import io as text_io
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from fastap_lab.errors import ConfigError
from fastap_lab.runs import EVALUATION, run_containing


def claim_output_dir(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3``, … the first that does not exist yet, created now.

    ``mkdir`` without ``exist_ok`` is atomic, so two evaluations started at once never share
    a folder and an earlier evaluation is never overwritten.
    """
    base.parent.mkdir(parents=True, exist_ok=True)
    for number in range(1, 10_000):
        candidate = base if number == 1 else base.with_name(f"{base.name}-{number}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"{base}: 10000 evaluation folders exist already")


def evaluation_dir(checkpoint: Path | None, fallback: str | Path) -> Path:
    """Where an evaluation writes: ``<run>/inference[-N]`` for a checkpoint inside a run folder.

    ``<run>/inference[-N]`` (claimed now) for ``<run>/checkpoints/*.ckpt``, else ``fallback``
    (Hydra's run folder), created if needed.
    """
    run = None if checkpoint is None else run_containing(checkpoint)
    if run is not None:
        return claim_output_dir(run / EVALUATION)
    out = Path(fallback)
    out.mkdir(parents=True, exist_ok=True)
    return out


def new_output_dir(out: str | Path | None, default: Path, what: str) -> Path:
    """The folder for a new ``what``, never an existing one.

    Where a new ``what`` (gallery, export, search) goes: ``out`` when given — refused when
    it exists, since an existing one is never overwritten — else ``default`` (``-2``, … when
    taken, claimed now as an empty folder). Fill it with :func:`fastap_lab.io.atomic_folder`.
    """
    if out in (None, ""):
        return claim_output_dir(default)
    path = Path(out).expanduser()
    if path.exists():
        raise ConfigError(f"out={path} exists; an existing {what} is never overwritten: give"
                          f" out=<a new folder>, or leave out= unset for {default.name}[-N]")  # fmt: skip
    return path


def split_names(num_frames: int, train_index: torch.Tensor, val_index: torch.Tensor) -> list[str]:
    """The split each frame belongs to, by name.

    Per frame: ``train``, ``val``, ``train+val`` (data.split=none) or ``gap`` (dropped from
    training because it lies within data.split_gap of a held-out frame).
    """
    in_train = torch.zeros(num_frames, dtype=torch.bool)
    in_val = torch.zeros(num_frames, dtype=torch.bool)
    in_train[train_index.cpu()] = True
    in_val[val_index.cpu()] = True
    names = {(True, True): "train+val", (True, False): "train", (False, True): "val"}
    return [
        names.get((t, v), "gap") for t, v in zip(in_train.tolist(), in_val.tolist(), strict=True)
    ]


def csv_text(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """CSV text of ``header`` and ``rows``."""
    buffer = text_io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def frames_csv(frames, splits: list[str]) -> str:
    """``index, frame, label, time, video, split`` for every frame in FrameSet order."""
    labels = [""] * len(frames) if frames.labels is None else frames.labels.tolist()
    rows = [
        (i, name, labels[i], f"{time:g}", frames.group_names[group], splits[i])
        for i, (name, time, group) in enumerate(
            zip(frames.names, frames.times.tolist(), frames.groups.tolist(), strict=True)
        )
    ]
    return csv_text(["index", "frame", "label", "time", "video", "split"], rows)


def per_query_csv(frames, query_index: torch.Tensor, per_query: dict[str, torch.Tensor]) -> str:
    """One row per query frame: index, frame, label, num_relevant, then every metric."""
    metrics = [name for name in per_query if name != "num_relevant"]
    header = ["index", "frame", "label", "num_relevant", *metrics]
    columns = {name: values.cpu().tolist() for name, values in per_query.items()}
    rows = []
    for row, index in enumerate(query_index.tolist()):
        values = [_number(columns[name][row]) for name in metrics]
        label = int(frames.labels[index])
        rows.append([index, frames.names[index], label, int(columns["num_relevant"][row]), *values])
    return csv_text(header, rows)


def _number(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def json_safe(value):
    """NaN / inf -> None (strict JSON has no NaN), recursively."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
