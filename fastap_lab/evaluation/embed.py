"""What turns frames into embeddings for evaluation: a trained checkpoint, or a baseline.

Every embedder maps uint8 frames [B, C, H, W] (on its device) to L2-normalised float32
embeddings [B, D]. Baselines: ``pixels`` (flattened, per-pixel standardised, optionally
downsampled frames) and ``untrained`` (a freshly initialised backbone of the default SimSiam
config, fixed seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from fastap_lab.build import build_module
from fastap_lab.checkpoints import CHECKPOINT_KEY, checkpoint_stage, load_checkpoint
from fastap_lab.errors import CheckpointError, ConfigError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
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
    """

    embed: EmbedFn
    kind: str
    device: torch.device
    stage: str | None = None
    checkpoint: Path | None = None
    run_config: dict | None = None
    embed_layer: str | None = None
    details: dict = field(default_factory=dict)


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


def compose_train_config(overrides: list[str]) -> DictConfig:
    """The training config ``conf/train.yaml`` with ``overrides`` (inside or outside Hydra)."""
    if GlobalHydra.instance().is_initialized():
        return compose("train", overrides=overrides)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def frozen(module: torch.nn.Module, device: torch.device, kind: str, **info) -> Embedder:
    """Wrap a StageModule: eval mode (BatchNorm running statistics), on ``device``."""
    module = module.to(device).eval()
    return Embedder(embed=module.embed, kind=kind, device=device, **info)


def checkpoint_embedder(
    path: str | Path, device: torch.device, embed_layer: str | None = None
) -> Embedder:
    """Rebuild the model from the config stored in a fastap_lab checkpoint and load its weights.

    ``embed_layer`` (SimSiam checkpoints only): ``backbone`` or ``projector`` instead of the
    run's own ``model.embed_layer``; None keeps the run's.
    """
    checkpoint = load_checkpoint(path, field="ckpt_path")
    stored = (checkpoint.get(CHECKPOINT_KEY) or {}).get("config")
    if not stored:
        raise CheckpointError(
            f"ckpt_path={path}: no run config stored under '{CHECKPOINT_KEY}', so the model cannot"
            " be rebuilt; use a checkpoint written by python -m fastap_lab.train"
        )
    cfg = OmegaConf.create(stored)
    if "pretrained" in cfg.model:
        cfg.model.pretrained = None  # every weight comes from this checkpoint's state_dict
    if embed_layer is not None:
        if embed_layer not in ("backbone", "projector"):
            raise ConfigError(
                f"eval.embed_layer={embed_layer!r}: choose backbone, projector or null"
            )
        if "embed_layer" not in cfg.model:
            raise ConfigError(
                f"eval.embed_layer={embed_layer}: only SimSiam checkpoints have a choice of layer;"
                f" {path} embeds with its FastAP head; leave eval.embed_layer=null"
            )
        cfg.model.embed_layer = embed_layer
    module = build_module(cfg)
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        reason = " ".join(str(exc).split())[:300]
        raise CheckpointError(
            f"ckpt_path={path}: its weights do not fit the model its stored config builds ({reason})"
        ) from exc
    return frozen(
        module, device, "checkpoint", stage=checkpoint_stage(checkpoint),
        checkpoint=Path(path).resolve(), run_config=stored,
        embed_layer=cfg.model.get("embed_layer"),
    )  # fmt: skip


def untrained_embedder(data_cfg: dict, cache_dir: str, seed: int, device: torch.device) -> Embedder:
    """The default SimSiam model (conf/train.yaml), freshly initialised with ``seed``."""
    cfg = compose_train_config([f"paths.cache_dir={cache_dir}", "paths.output_dir=."])
    OmegaConf.set_struct(cfg, False)
    cfg.data = OmegaConf.create(data_cfg)  # backbone.in_channels follows ${data.channels}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build_module(cfg)
    details = {"seed": seed, "backbone": cfg.backbone.name, "embed_layer": cfg.model.embed_layer}
    return frozen(module, device, "untrained", details=details)


class PixelEmbedding:
    """Frames as vectors: area-downsampled to ``size`` px, flattened, standardised per pixel
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
        return F.normalize((self.features(images) - self.mean) / self.std, dim=1)


def pixels_embedder(reference: torch.Tensor, size: int | None, device: torch.device) -> Embedder:
    embedding = PixelEmbedding(reference, size, device)
    return Embedder(embed=embedding, kind="pixels", device=device, details={"size": size})


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


def embed_frames(embedder: Embedder, datamodule, batch_size: int) -> torch.Tensor:
    """Every frame of a set-up FramesDataModule, in FrameSet order: float32 [N, D] on CPU."""
    datamodule.eval_batch_size = batch_size
    parts, order = [], []
    with torch.inference_mode():
        for batch in datamodule.all_dataloader():
            images = batch["images"].to(embedder.device, non_blocking=True)
            parts.append(embedder.embed(images).float().cpu())
            order.append(batch["index"])
    # Placed by each batch's FrameSet index, so the rows follow the FrameSet whatever the loader.
    embeddings = torch.cat(parts)
    return embeddings[torch.cat(order).argsort()]


def not_trainable(*args, kind: str = "this baseline", **kwargs):
    """Target of conf/model/{pixels,untrained}.yaml: they are evaluation baselines only."""
    raise ConfigError(
        f"model={kind} is an evaluation baseline (python -m fastap_lab.evaluate model={kind});"
        " to train, use model=simsiam or model=fastap"
    )
