"""Running an exported embedder (``python -m fastap_lab.export``) without Lightning or Hydra.

``embedder.onnx`` through onnxruntime, ``embedder.pt`` through TorchScript, each with the
``preprocess.json`` written beside it (input spec, output dim, the model's identity).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fastap_lab.data.preprocess import PreprocessSpec
from fastap_lab.errors import ConfigError, DataError

PREPROCESS_JSON = "preprocess.json"
FORMATS = {"onnx": "embedder.onnx", "torchscript": "embedder.pt"}
SUFFIXES = {".onnx": "onnx", ".pt": "torchscript"}


@dataclass
class ExportedModel:
    """An exported embedder, loaded and ready to run.

    An exported embedder: ``run`` maps preprocessed float32 [B, C, H, W] (numpy) to unit
    float32 [B, D]; ``record`` is its preprocess.json.
    """

    path: Path
    format: str
    record: dict
    run: object

    @property
    def spec(self) -> PreprocessSpec:
        """The model's input preprocessing, from its preprocess.json."""
        return PreprocessSpec.from_dict(self.record["model"]["preprocess"], str(self.path))

    def embed(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """uint8 [N, C, H, W] -> float32 [N, D] (preprocessed by the spec first)."""
        spec = self.spec
        parts = [self.run(spec.prepare(images[s : s + batch_size]).numpy())
                 for s in range(0, len(images), batch_size)]  # fmt: skip
        return torch.from_numpy(np.concatenate(parts).astype(np.float32, copy=False))


def onnx_runner(path: Path):
    """A function float32 [B, C, H, W] -> [B, D] (numpy) running ``path`` in onnxruntime (CPU)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def torchscript_runner(path: Path):
    """A function float32 [B, C, H, W] -> [B, D] (numpy) running the TorchScript ``path`` (CPU)."""
    module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    return run


def load_exported(path: str | Path) -> ExportedModel:
    """Load an exported embedder and its preprocess.json.

    An ``embedder.onnx`` / ``embedder.pt`` (or the export folder holding one) and its
    preprocess.json; a bad path or file is one DataError / ConfigError line.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        found = [path / name for name in FORMATS.values() if (path / name).is_file()]
        if not found:
            raise DataError(f"model={path}: a folder without embedder.onnx or embedder.pt")
        path = found[0]
    kind = SUFFIXES.get(path.suffix)
    if kind is None:
        raise ConfigError(f"model={path}: unknown format {path.suffix!r}; give an exported"
                          " embedder.onnx or embedder.pt (python -m fastap_lab.export)")  # fmt: skip
    if not path.is_file():
        raise DataError(f"model={path}: no such file")
    spec_file = path.parent / PREPROCESS_JSON
    try:
        record = json.loads(spec_file.read_text(encoding="utf-8"))
        record["model"]["preprocess"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"model={path}: no readable {PREPROCESS_JSON} beside it ({exc}); keep"
                        " the export folder together") from exc  # fmt: skip
    try:
        run = onnx_runner(path) if kind == "onnx" else torchscript_runner(path)
    except Exception as exc:  # noqa: BLE001  onnxruntime / TorchScript raise many kinds
        raise DataError(f"model={path}: cannot load it as {kind} ({type(exc).__name__}:"
                        f" {' '.join(str(exc).split())[:200]})") from exc  # fmt: skip
    return ExportedModel(path, kind, record, run)
