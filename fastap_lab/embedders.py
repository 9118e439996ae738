"""Embedders that rebuild a network: a fastap_lab checkpoint, or the ``untrained`` baseline.

Glue (the model is rebuilt from a stored config through the Lightning modules); the embedder
itself and the pixel baseline are pure (:mod:`fastap_lab.evaluation.embed`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from fastap_lab.build import build_module
from fastap_lab.checkpoints import CHECKPOINT_KEY, checkpoint_stage, load_checkpoint
from fastap_lab.compose import compose_config
from fastap_lab.data.preprocess import spec_of_run
from fastap_lab.errors import CheckpointError, ConfigError
from fastap_lab.evaluation.embed import Embedder, frozen


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
        embed_layer=cfg.model.get("embed_layer"), preprocess=spec_of_run(stored),
    )  # fmt: skip


def untrained_embedder(data_cfg: dict, cache_dir: str, seed: int, device: torch.device) -> Embedder:
    """The default SimSiam model (conf/train.yaml), freshly initialised with ``seed``."""
    cfg = compose_config("train", [f"paths.cache_dir={cache_dir}", "paths.output_dir=."])
    OmegaConf.set_struct(cfg, False)
    cfg.data = OmegaConf.create(data_cfg)  # backbone.in_channels follows ${data.channels}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build_module(cfg)
    details = {"seed": seed, "backbone": cfg.backbone.name, "embed_layer": cfg.model.embed_layer}
    return frozen(module, device, "untrained", details=details)
