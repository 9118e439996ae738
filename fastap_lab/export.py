"""``python -m fastap_lab.export ckpt_path=RUN format=onnx|torchscript [out=DIR]``.

Writes the checkpoint's embedder — preprocessed float32 ``[N, C, H, W]`` in, L2-normalised
float32 ``[N, D]`` out, any N — as ``embedder.onnx`` (``torch.onnx.export``, the TorchScript
exporter, ``dynamo=False``: works offline, dynamic batch axis) or ``embedder.pt``
(``torch.jit.trace``), with ``preprocess.json`` (:mod:`fastap_lab.exported`). The export is
checked before it is kept: its outputs on random frames equal PyTorch's within ``tolerance``.
Folder: ``out`` (must not exist) or ``<run>/export`` (``export-2``, … when taken), atomically.
The export itself: :func:`fastap_lab.evaluation.export_embedder.export_embedder`.
"""

from __future__ import annotations

import logging

import hydra
import torch
from omegaconf import DictConfig

from fastap_lab.checkpoints import resolve_checkpoint_path
from fastap_lab.cli import log_lines, run_task
from fastap_lab.errors import ConfigError
from fastap_lab.evaluation.export_embedder import export_embedder, require_onnx
from fastap_lab.evaluation.report import new_output_dir
from fastap_lab.exported import FORMATS
from fastap_lab.runs import run_of_checkpoint

log = logging.getLogger(__name__)


def export(cfg: DictConfig) -> dict:
    """Export the embedder described by ``cfg`` (conf/export.yaml); returns preprocess.json."""
    from fastap_lab.embedders import checkpoint_embedder

    fmt = cfg.get("format")
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r}: choose onnx or torchscript")
    if not cfg.get("ckpt_path"):
        raise ConfigError("ckpt_path is not set: give ckpt_path=<run folder> or <file.ckpt>")
    if fmt == "onnx":
        require_onnx()
    checkpoint = resolve_checkpoint_path(cfg.ckpt_path, "ckpt_path")
    embedder = checkpoint_embedder(checkpoint, torch.device("cpu"), cfg.get("embed_layer"))
    run_dir = run_of_checkpoint(checkpoint)
    record, lines = export_embedder(
        embedder, fmt, cfg.opset, cfg.tolerance,
        lambda: new_output_dir(cfg.get("out"), run_dir / "export", "export"),
    )  # fmt: skip
    log_lines(log, lines)
    return record


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> dict:
    """Command-line entry point: :func:`export` on the composed Hydra config (conf/export.yaml)."""
    return run_task(export, cfg)


if __name__ == "__main__":
    main()
