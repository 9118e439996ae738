"""Stage 1: SimSiam self-supervised pretraining (Chen & He, CVPR 2021)."""

from __future__ import annotations

import torch

from fastap_lab.errors import ConfigError
from fastap_lab.lit.base import StageModule
from fastap_lab.losses.simsiam import normalized_std
from fastap_lab.models import EmbeddingNetwork, Predictor, Projector

EMBED_LAYERS = ("backbone", "projector")


class SimSiamModule(StageModule):
    """Backbone -> projector -> predictor, trained on two augmented views of each frame.

    Checkpoint keys start with ``backbone.``, ``projector.``, ``predictor.``: the FastAP stage
    reads the first two by prefix.

    Args:
        backbone: image encoder with ``out_dim``.
        loss: ``loss(p1, p2, z1, z2) -> scalar`` (:func:`fastap_lab.losses.simsiam.simsiam_loss`).
        fix_predictor_lr: keep the predictor at its initial LR while the scheduler anneals
            the rest (recommended by the SimSiam paper).
        embed_layer: what :meth:`embed` returns for retrieval, ``backbone`` or ``projector``.
    """

    stage = "simsiam"

    def __init__(
        self,
        backbone,
        augment,
        loss,
        optimizer,
        scheduler=None,
        projector_dim: int = 2048,
        projector_layers: int = 3,
        predictor_dim: int = 512,
        fix_predictor_lr: bool = False,
        embed_layer: str = "backbone",
        **hardware,  # compile, channels_last: see StageModule
    ) -> None:
        super().__init__(augment, optimizer, scheduler, **hardware)
        if embed_layer not in EMBED_LAYERS:
            raise ConfigError(f"model.embed_layer={embed_layer!r}: choose one of {EMBED_LAYERS}")
        self.backbone = backbone
        self.projector = Projector(backbone.out_dim, projector_dim, projector_layers)
        self.predictor = Predictor(projector_dim, predictor_dim)
        self.loss_fn = loss
        self.fix_predictor_lr = fix_predictor_lr
        self.embed_layer = embed_layer

    def parameter_groups(self) -> list[dict]:
        """Encoder parameters, and the predictor's as a group that may keep a fixed LR."""
        encoder = list(self.backbone.parameters()) + list(self.projector.parameters())
        return [
            {"params": encoder},
            {"params": list(self.predictor.parameters()), "fix_lr": self.fix_predictor_lr},
        ]

    def on_train_epoch_start(self) -> None:
        """Reset the predictor's LR to its initial value when it is fixed."""
        if self.fix_predictor_lr:
            for group in self.optimizers().param_groups:
                if group.get("fix_lr"):
                    group["lr"] = group["initial_lr"]
        super().on_train_epoch_start()

    def compute_loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """The stage's loss on one batch, with the first view's projections.

        Also what the benchmarks' plain loop runs. Returns ``loss`` and ``z1`` (the first view's
        projections, for the collapse monitor).
        """
        images = batch["images"]
        z1 = self.projector(self.backbone(self.augment(images)))
        z2 = self.projector(self.backbone(self.augment(images)))
        return {"loss": self.loss_fn(self.predictor(z1), self.predictor(z2), z1, z2), "z1": z1}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        """One SimSiam step: the loss of the batch's two views, logged with the collapse monitor."""
        parts = self.compute_loss(batch)
        loss = parts["loss"]
        self.check_finite(loss)
        self.log("train/loss_step", loss, on_step=True, prog_bar=True, logger=False)
        self.log(
            "train/loss", loss, on_step=False, on_epoch=True, batch_size=batch["images"].shape[0]
        )
        z_std = normalized_std(parts["z1"])
        self.log("train/z_std", z_std, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def embedding_network(self) -> EmbeddingNetwork:
        """The backbone (and the projector when ``embed_layer`` is ``projector``), L2-normalised."""
        layers = (
            (self.backbone, self.projector) if self.embed_layer == "projector" else (self.backbone,)
        )
        return EmbeddingNetwork(*layers)
