"""Build the pieces of a run from a composed config (shared by train, evaluate and tests)."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig

import fastap_lab.config  # noqa: F401  (registers the resolvers the configs use)
from fastap_lab.errors import FastapLabError


def instantiate(config, *args, **kwargs):
    """Hydra's instantiate, but a user error raised by the target surfaces as itself rather
    than wrapped in InstantiationException (so callers and tests see e.g. CheckpointError)."""
    try:
        return hydra_instantiate(config, *args, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        while cause is not None and not isinstance(cause, FastapLabError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary name, then renames it: a crash mid-write never
    leaves a truncated ``last.ckpt``."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


def build_datamodule(cfg: DictConfig):
    return instantiate(cfg.data, _convert_="all")


def build_module(cfg: DictConfig):
    """The LightningModule of ``cfg.model`` with its backbone, augment, loss and optimiser."""
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    return instantiate(
        cfg.model,
        backbone=instantiate(cfg.backbone),
        augment=instantiate(cfg.augment),
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        scheduler=scheduler,
        _convert_="all",
    )


def build_trainer(cfg: DictConfig, callbacks: list | None = None) -> L.Trainer:
    configured = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    return instantiate(
        cfg.trainer,
        callbacks=configured + list(callbacks or []),
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
    )
