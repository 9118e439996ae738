"""What turns frames into embeddings for evaluation, and running it over frames.

Every :class:`Embedder` maps uint8 frames [B, C, H, W] (on its device) to L2-normalised float32
embeddings [B, D]. Here: the raw-pixel baseline (flattened, per-pixel standardised, optionally
downsampled frames) and the wrapper of any network; a trained checkpoint or the ``untrained``
baseline are rebuilt by :mod:`fastap_lab.embedders` (that needs the Lightning modules, this
module does not).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from fastap_lab.data.preprocess import PreprocessSpec
from fastap_lab.errors import ConfigError

EmbedFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Embedder:
    """A frozen ``uint8 [B, C, H, W] -> unit float32 [B, D]`` map and what it is.

    Attributes:
        embed: the map; inputs must be on ``device``.
        kind: ``checkpoint``, ``pixels`` or ``untrained``.
        stage: the checkpoint's stage (``simsiam`` / ``fastap``), None for baselines.
        checkpoint: the resolved checkpoint path, None for baselines.
        run_config: the training run's config stored in the checkpoint (plain dict) or None.
        embed_layer: a SimSiam checkpoint's embedded layer (``backbone`` / ``projector``).
        details: what a baseline is (its settings), empty for checkpoints.
        network: a checkpoint's layers after the normalisation (preprocessed float32
            [B, C, H, W] -> unit float32 [B, D]; what export writes), None for baselines.
        preprocess: a checkpoint's :class:`~fastap_lab.data.preprocess.PreprocessSpec`.
    """

    embed: EmbedFn
    kind: str
    device: torch.device
    stage: str | None = None
    checkpoint: Path | None = None
    run_config: dict | None = None
    embed_layer: str | None = None
    details: dict = field(default_factory=dict)
    network: torch.nn.Module | None = None
    preprocess: PreprocessSpec | None = None


def pick_device(requested: str) -> torch.device:
    """``auto`` -> the CUDA device when there is one, else CPU; ``cpu`` / ``cuda[:i]`` as given."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested != "cpu" and not str(requested).startswith("cuda"):
        raise ConfigError(f"eval.device={requested!r}: choose auto, cpu or cuda")
    if str(requested).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"eval.device={requested}: no CUDA device here; use eval.device=auto or cpu"
        )
    return torch.device(requested)


def frozen(module: torch.nn.Module, device: torch.device, kind: str, **info) -> Embedder:
    """Wrap a StageModule: eval mode (BatchNorm running statistics), on ``device``."""
    module = module.to(device).eval()
    network = module.embedding_network() if kind == "checkpoint" else None
    return Embedder(embed=module.embed, kind=kind, device=device, network=network, **info)


class PixelEmbedding:
    """The ``pixels`` baseline: frames embedded as their standardised pixels.

    Frames as vectors: area-downsampled to ``size`` px, flattened, standardised per pixel
    with the mean / std over ``reference`` frames (so every pixel weighs the same), L2-normalised.

    Args:
        reference: uint8 [N, C, H, W] frames the statistics come from.
        size: side length after downsampling; None or >= H keeps the frames as they are.
    """

    def __init__(self, reference: torch.Tensor, size: int | None, device: torch.device) -> None:
        self.size = size
        features = self.features(reference.to(device))
        self.mean = features.mean(0)
        self.std = features.std(0, unbiased=False).clamp_min(1e-6)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, C, H, W] -> float32 [B, C * size * size] in [0, 1]."""
        x = images.float() / 255.0
        if self.size and self.size < x.shape[-1]:
            x = F.interpolate(x, size=(self.size, self.size), mode="area")
        return x.flatten(1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, C, H, W] -> unit float32 [B, C * size * size], standardised per pixel."""
        return F.normalize((self.features(images) - self.mean) / self.std, dim=1)


def pixels_embedder(reference: torch.Tensor, size: int | None, device: torch.device) -> Embedder:
    """The ``pixels`` baseline (:class:`PixelEmbedding` with ``reference``'s statistics)."""
    embedding = PixelEmbedding(reference, size, device)
    return Embedder(embed=embedding, kind="pixels", device=device, details={"size": size})


def model_identity(embedder: Embedder, spec: PreprocessSpec, dim: int) -> dict:
    """What made the embeddings: the gallery's and an export's ``model`` record."""
    from fastap_lab.checkpoints import file_sha256

    return {
        "checkpoint": str(embedder.checkpoint), "sha256": file_sha256(embedder.checkpoint),
        "stage": embedder.stage, "embed_layer": embedder.embed_layer, "dim": dim,
        "preprocess": spec.to_dict(), "l2_normalised": True,
    }  # fmt: skip


def embed_images(embedder: Embedder, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """uint8 [N, C, H, W] (any device) -> float32 [N, D] on CPU, ``batch_size`` at a time."""
    if batch_size < 1:
        raise ConfigError(f"eval.batch_size={batch_size}: must be >= 1")
    with torch.inference_mode():
        parts = [
            embedder.embed(images[start : start + batch_size].to(embedder.device)).float().cpu()
            for start in range(0, images.shape[0], batch_size)
        ]
    return torch.cat(parts) if parts else torch.zeros(0, 0)
