"""Exporting a checkpoint's embedder as a standalone model (``python -m fastap_lab.export``).

Owns writing the network (preprocessed float32 ``[N, C, H, W]`` in, L2-normalised float32
``[N, D]`` out, any N) as ONNX (``torch.onnx.export``, ``dynamo=False``) or TorchScript
(``torch.jit.trace``) with its ``preprocess.json``, and checking the written file against
PyTorch before it is kept (:func:`export_embedder`). Reading an export:
:mod:`fastap_lab.exported`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch

from fastap_lab import __version__, io
from fastap_lab.errors import CheckpointError, ConfigError
from fastap_lab.evaluation.embed import Embedder, embed_images, model_identity
from fastap_lab.exported import FORMATS, PREPROCESS_JSON, load_exported


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


def max_difference(embedder: Embedder, exported_path: Path, images: torch.Tensor) -> float:
    """Max |exported - PyTorch| over ``images`` (uint8), both through the same preprocessing."""
    expected = embed_images(embedder, images, batch_size=len(images))
    got = load_exported(exported_path).embed(images)
    return float((got - expected).abs().max())


def export_embedder(embedder: Embedder, fmt: str, opset: int, tolerance: float,
                    output_dir: Callable[[], Path]) -> tuple[dict, list[tuple[int, str]]]:  # fmt: skip
    """Write ``embedder`` (a checkpoint's, on CPU) as ``fmt`` into a new folder, checked.

    Args:
        embedder: the checkpoint's embedder (its ``network`` and ``preprocess``).
        fmt: ``onnx`` or ``torchscript``.
        opset: the ONNX opset.
        tolerance: the largest max |exported - PyTorch| kept (else CheckpointError, nothing kept).
        output_dir: claims the new folder (called once the model is known to embed).

    Returns:
        preprocess.json's record and the summary as ``(level, line)`` pairs.
    """
    spec = embedder.preprocess
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, spec.channels, spec.image_size, spec.image_size),
                           dtype=torch.uint8, generator=generator)  # fmt: skip
    dim = int(embedder.embed(images[:1]).shape[1])
    out = output_dir()
    with io.atomic_folder(out) as tmp:
        how = write_model(embedder.network, spec.prepare(images[:2]), tmp / FORMATS[fmt], fmt,
                          int(opset))  # fmt: skip
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
        if not difference <= float(tolerance):
            raise CheckpointError(f"the {fmt} export differs from PyTorch by {difference:.3g} >"
                                  f" tolerance={tolerance}; not kept")  # fmt: skip
        record["max_abs_difference_vs_pytorch"] = difference
        io.write_json(tmp / PREPROCESS_JSON, record)
    line = (f"{fmt} embedder ({dim:d} dims, max |difference| to PyTorch {difference:.2g}):"
            f" {out / FORMATS[fmt]}")  # fmt: skip
    return record, [(logging.INFO, line)]
