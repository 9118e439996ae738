"""``python -m fastap_lab.export ckpt_path=RUN format=onnx|torchscript [out=DIR]``.

Writes the checkpoint's embedder — preprocessed float32 ``[N, C, H, W]`` in, L2-normalised
float32 ``[N, D]`` out, any N — as ``embedder.onnx`` (``torch.onnx.export``, the TorchScript
exporter, ``dynamo=False``: works offline, dynamic batch axis) or ``embedder.pt``
(``torch.jit.trace``), with ``preprocess.json`` (:mod:`fastap_lab.exported`). The export is
checked before it is kept: its outputs on random frames equal PyTorch's within ``tolerance``.
Folder: ``out`` (must not exist) or ``<run>/export`` (``export-2``, … when taken), atomically.
"""

from __future__ import annotations

import logging
import warnings
from datetime import UTC, datetime
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from fastap_lab import __version__, io
from fastap_lab.checkpoints import resolve_checkpoint_path
from fastap_lab.cli import run_task
from fastap_lab.errors import CheckpointError, ConfigError
from fastap_lab.evaluation.report import new_output_dir
from fastap_lab.exported import FORMATS, PREPROCESS_JSON, load_exported

log = logging.getLogger(__name__)


def write_model(network: torch.nn.Module, example: torch.Tensor, path: Path, fmt: str,
                opset: int) -> str:  # fmt: skip
    """Write ``network`` traced on ``example`` to ``path``; returns how."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer / deprecation chatter
        if fmt == "torchscript":
            with torch.no_grad():
                torch.jit.trace(network, example, check_trace=False).save(str(path))
            return f"torch.jit.trace (torch {torch.__version__})"
        torch.onnx.export(
            network, (example,), str(path), input_names=["images"], output_names=["embeddings"],
            dynamic_axes={"images": {0: "batch"}, "embeddings": {0: "batch"}},
            opset_version=opset, dynamo=False,
        )  # fmt: skip
    return f"torch.onnx.export(dynamo=False, opset {opset}) (torch {torch.__version__})"


def require_onnx() -> None:
    """One line when the packages that write (onnx) and check (onnxruntime) an ONNX file lack."""
    import importlib.util

    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"format=onnx needs {' and '.join(missing)}: pip install"
                          " 'fastap_lab[export]' (or format=torchscript)")  # fmt: skip


def max_difference(embedder, exported_path: Path, images: torch.Tensor) -> float:
    """Max |exported - PyTorch| over ``images`` (uint8), both through the same preprocessing."""
    from fastap_lab.evaluation.embed import embed_images

    expected = embed_images(embedder, images, batch_size=len(images))
    got = load_exported(exported_path).embed(images)
    return float((got - expected).abs().max())


def export(cfg: DictConfig) -> dict:
    """Export the embedder described by ``cfg`` (conf/export.yaml); returns preprocess.json."""
    from fastap_lab.embed import model_identity
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
    spec = embedder.preprocess
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, spec.channels, spec.image_size, spec.image_size),
                           dtype=torch.uint8, generator=generator)  # fmt: skip
    dim = int(embedder.embed(images[:1]).shape[1])
    run_dir = (
        checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    )
    out = new_output_dir(cfg.get("out"), run_dir / "export", "export")
    with io.atomic_folder(out) as tmp:
        how = write_model(embedder.network, spec.prepare(images[:2]), tmp / FORMATS[fmt], fmt,
                          int(cfg.opset))  # fmt: skip
        record = {
            "format": fmt, "file": FORMATS[fmt], "exporter": how,
            "input": {"name": "images", "shape": ["N", spec.channels, spec.image_size,
                      spec.image_size], "dtype": "float32", "preprocessed": "see model.preprocess"},
            "output": {"name": "embeddings", "shape": ["N", dim], "dtype": "float32",
                       "l2_normalised": True},
            "model": model_identity(embedder, spec, dim),
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "fastap_lab_version": __version__,
        }  # fmt: skip
        io.write_json(tmp / PREPROCESS_JSON, record)
        difference = max_difference(embedder, tmp / FORMATS[fmt], images)
        if not difference <= float(cfg.tolerance):
            raise CheckpointError(f"the {fmt} export differs from PyTorch by {difference:.3g} >"
                                  f" tolerance={cfg.tolerance}; not kept")  # fmt: skip
        record["max_abs_difference_vs_pytorch"] = difference
        io.write_json(tmp / PREPROCESS_JSON, record)
    log.info("%s embedder (%d dims, max |difference| to PyTorch %.2g): %s", fmt, dim, difference,
             out / FORMATS[fmt])  # fmt: skip
    return record


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> dict:
    """Command-line entry point: :func:`export` on the composed Hydra config (conf/export.yaml)."""
    return run_task(export, cfg)


if __name__ == "__main__":
    main()
