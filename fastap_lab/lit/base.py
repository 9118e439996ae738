"""What both training stages share: augmentation, optimiser wiring, checkpoint metadata."""

from __future__ import annotations

import lightning as L
import torch

from fastap_lab import __version__
from fastap_lab.checkpoints import CHECKPOINT_KEY
from fastap_lab.errors import TrainingDivergedError


class StageModule(L.LightningModule):
    """Base of the SimSiam and FastAP modules.

    Args:
        augment: batched augmentation (:class:`fastap_lab.data.augment.FrameAugment`); also
            provides the evaluation normalisation.
        optimizer: ``partial`` taking parameter groups (Hydra ``_partial_: true``).
        scheduler: ``partial`` taking the optimiser, stepped once per epoch, or None.
    """

    stage = "base"

    def __init__(self, augment, optimizer, scheduler=None) -> None:
        super().__init__()
        self.augment = augment
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # The resolved run config, stored in every checkpoint so evaluation can rebuild the model.
        self.run_config: dict | None = None

    def parameter_groups(self) -> list[dict]:
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameter_groups())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    def log_learning_rates(self) -> None:
        """Log the LR this epoch trains with; logged here rather than by LearningRateMonitor
        so it lands in the epoch's metrics.csv row."""
        for i, group in enumerate(self.optimizers().param_groups):
            name = "train/lr" if i == 0 else f"train/lr_group{i}"
            self.log(name, group["lr"], on_step=False, on_epoch=True)

    def on_train_epoch_start(self) -> None:
        self.log_learning_rates()

    def check_finite(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            lr = self.optimizers().param_groups[0]["lr"] if self._trainer else float("nan")
            raise TrainingDivergedError(
                f"train/loss became {loss.item()} at epoch {self.current_epoch}, step"
                f" {self.global_step} (lr {lr:g}); lower optimizer.lr, or use"
                " trainer.precision=32-true if you trained in 16-bit"
            )

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 frames [B, C, H, W] -> L2-normalised float32 embeddings [B, D] (eval transform)."""
        raise NotImplementedError

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "stage": self.stage,
            "config": self.run_config,
            "version": __version__,
        }
