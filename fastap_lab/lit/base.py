"""What both training stages share: augmentation, optimiser wiring, checkpoint metadata."""

from __future__ import annotations

import lightning as L
import torch

from fastap_lab import __version__
from fastap_lab.checkpoints import CHECKPOINT_KEY
from fastap_lab.errors import TrainingDivergedError


def _inputs_to_channels_last(module, args: tuple) -> tuple:
    """Forward pre-hook: the image batch in NHWC memory format (values unchanged)."""
    return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])


class StageModule(L.LightningModule):
    """Base of the SimSiam and FastAP modules.

    Args:
        augment: batched augmentation (:class:`fastap_lab.data.augment.FrameAugment`); also
            provides the evaluation normalisation.
        optimizer: ``partial`` taking parameter groups (Hydra ``_partial_: true``).
        scheduler: ``partial`` taking the optimiser, stepped once per epoch, or None.
        compile: compile the backbone with ``torch.compile`` (in place, so checkpoint keys stay
            ``backbone.*``) when the Trainer sets the module up: ``true`` (inductor) or a
            backend name (e.g. ``aot_eager``). Pays off on a GPU; the first steps compile
            (minutes with inductor on a small CPU).
        channels_last: NHWC memory format for the backbone's weights and inputs, which
            tensor-core convolutions prefer (GPU, bf16); same results as the default format.
    """

    stage = "base"

    def __init__(
        self,
        augment,
        optimizer,
        scheduler=None,
        compile: bool | str = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.compile_backbone, self.channels_last = compile, bool(channels_last)
        self._hardware_applied = False
        self.augment = augment
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # The resolved run config, stored in every checkpoint so evaluation can rebuild the model.
        self.run_config: dict | None = None

    def configure_model(self) -> None:
        """Apply ``channels_last`` / ``compile`` once, when the Trainer sets the module up."""
        if self._hardware_applied:
            return
        self._hardware_applied = True
        if self.channels_last:
            self.backbone.to(memory_format=torch.channels_last)
            self.backbone.register_forward_pre_hook(_inputs_to_channels_last)
        if self.compile_backbone:
            backend = {} if self.compile_backbone is True else {"backend": self.compile_backbone}
            self.backbone.compile(**backend)

    def parameter_groups(self) -> list[dict]:
        """The optimizer's parameter groups (one group of every trainable parameter)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def configure_optimizers(self):
        """The optimizer, with its LR scheduler when one is configured."""
        optimizer = self.optimizer_factory(self.parameter_groups())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    def log_learning_rates(self) -> None:
        """Log the learning rates this epoch trains with.

        Log the LR this epoch trains with; logged here rather than by LearningRateMonitor
        so it lands in the epoch's metrics.csv row.
        """
        for i, group in enumerate(self.optimizers().param_groups):
            name = "train/lr" if i == 0 else f"train/lr_group{i}"
            self.log(name, group["lr"], on_step=False, on_epoch=True)

    def setup(self, stage: str) -> None:
        """Remember the run's seed, the base of each epoch's augmentation seed."""
        # The run's seed (seed_everything has just set it; nothing has reseeded yet).
        self.seed_base = torch.initial_seed() % 2**31

    def on_train_epoch_start(self) -> None:
        """Reseed the augmentation for this epoch and log the learning rates."""
        self.reseed_for_epoch()
        self.log_learning_rates()

    def reseed_for_epoch(self) -> None:
        """Seed the global RNG from (run seed, epoch, rank).

        Seed the global RNG (augmentation draws) from (run seed, epoch, rank): an epoch's
        random draws then do not depend on how many epochs ran before in this process, so a
        run resumed from a checkpoint continues exactly as an uninterrupted one would.
        """
        base = getattr(self, "seed_base", 0)
        torch.manual_seed(base + 1_000_003 * (self.current_epoch + 1) + 7919 * self.global_rank)

    def check_finite(self, loss: torch.Tensor) -> None:
        """Raise TrainingDivergedError, with epoch, step and LR, when ``loss`` is not finite."""
        if not torch.isfinite(loss):
            lr = self.optimizers().param_groups[0]["lr"] if self._trainer else float("nan")
            raise TrainingDivergedError(
                f"train/loss became {loss.item()} at epoch {self.current_epoch}, step"
                f" {self.global_step} (lr {lr:g}); lower optimizer.lr, or use"
                " trainer.precision=32-true if you trained in 16-bit"
            )

    def embedding_network(self) -> torch.nn.Module:
        """The network that embeds preprocessed frames (implemented by each stage).

        Preprocessed float32 [B, C, H, W] -> unit float32 [B, D] (the layers :meth:`embed`
        runs after the normalisation; what ``python -m fastap_lab.export`` writes).
        """
        raise NotImplementedError

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 frames [B, C, H, W] -> L2-normalised float32 embeddings [B, D] (eval transform)."""
        return self.embedding_network()(self.augment.normalize(images))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Store the stage, run config and version in the checkpoint."""
        checkpoint[CHECKPOINT_KEY] = {
            "stage": self.stage,
            "config": self.run_config,
            "version": __version__,
        }
