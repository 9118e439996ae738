"""Build the pieces of a run from a composed config (shared by train, evaluate and tests)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf

import fastap_lab.config  # noqa: F401  (registers the resolvers the configs use)
from fastap_lab.checkpoints import load_checkpoint, resolve_checkpoint_path
from fastap_lab.errors import FastapLabError

log = logging.getLogger(__name__)


def instantiate(config, *args, **kwargs):
    """Hydra's instantiate, letting the target's own user errors through unwrapped.

    Hydra's instantiate, but a user error raised by the target surfaces as itself rather
    than wrapped in InstantiationException (so callers and tests see e.g. CheckpointError).
    """
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
    """Checkpoint I/O that writes atomically and reads with the weights-only loader.

    Writes each checkpoint to a temporary name, then renames it: a crash mid-write never
    leaves a truncated ``last.ckpt``. Reads (``trainer.fit(ckpt_path=…)``) go through the
    weights-only loader of :mod:`fastap_lab.checkpoints`, so resuming never runs code from a
    checkpoint; ``allow_unsafe=True`` falls back to full unpickling for trusted files only.
    """

    def __init__(self, allow_unsafe: bool = False) -> None:
        super().__init__()
        self.allow_unsafe = allow_unsafe

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        """Read a checkpoint with the project's safe loader (unless unsafe loading was allowed)."""
        if not self.allow_unsafe:
            return load_checkpoint(path, field="ckpt_path")
        unsafe_path = resolve_checkpoint_path(path, "ckpt_path")
        return super().load_checkpoint(unsafe_path, map_location, weights_only=False)

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        """Write the checkpoint to a temporary name, then rename it into place."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


def build_datamodule(cfg: DictConfig):
    """The LightningDataModule of ``cfg.data``."""
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


def trainer_config(cfg: DictConfig) -> DictConfig:
    """The trainer config, with ``sync_batchnorm`` switched off on a CPU run.

    ``cfg.trainer``, with ``sync_batchnorm`` switched off (and a warning) on a CPU run:
    torch's SyncBatchNorm needs CUDA, so ``trainer=ddp`` with gloo on CPU would fail.
    """
    trainer = cfg.trainer
    accelerator = trainer.get("accelerator", "auto")
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if trainer.get("sync_batchnorm") and on_cpu:
        log.warning("trainer.sync_batchnorm=true needs CUDA; off for this CPU run")
        trainer = OmegaConf.merge(trainer, {"sync_batchnorm": False})
    return trainer


def build_trainer(cfg: DictConfig, callbacks: list | None = None) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with the configured callbacks, loggers and ``callbacks``."""
    configured = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    return instantiate(
        trainer_config(cfg),
        callbacks=configured + list(callbacks or []),
        logger=loggers or False,
        plugins=[AtomicCheckpointIO(allow_unsafe=bool(cfg.get("allow_unsafe_checkpoint")))],
    )
