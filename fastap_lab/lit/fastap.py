"""Stage 2: FastAP fine-tuning (Cakir et al., CVPR 2019) from a SimSiam checkpoint."""

from __future__ import annotations

import torch

from fastap_lab.checkpoints import checkpoint_stage, load_checkpoint, load_submodule
from fastap_lab.errors import CheckpointError, ConfigError
from fastap_lab.lit.base import StageModule
from fastap_lab.losses.objectives import scale_phase
from fastap_lab.models import EmbeddingHead, EmbeddingNetwork, Projector
from fastap_lab.respiration.pipeline import surrogate_from_frames


def training_phase(datamodule) -> torch.Tensor:
    """Respiratory phase of the training frames, from their images alone.

    Respiratory phase float [N_frames] from the training frames' images alone (0..1 over the
    breathing range; NaN for held-out frames, which never reach a training batch), so
    ``loss.positives=surrogate`` never looks at held-out frames or at any label.
    """
    frames, train = datamodule.frames, datamodule.train_index
    surrogate = surrogate_from_frames(
        frames.images[train], frames.times[train], frames.groups[train]
    )
    phase = torch.full((len(frames),), float("nan"))
    phase[train] = scale_phase(surrogate.values)
    return phase


class FastAPModule(StageModule):
    """Backbone -> projector -> embedding head (L2-normalised), trained with FastAP.

    Args:
        pretrained: a SimSiam ``.ckpt`` or run folder; its ``backbone.*`` and ``projector.*``
            weights are loaded by key prefix. None trains from scratch (a baseline).
        freeze_backbone, freeze_projector: frozen parts get no gradient and stay in eval mode,
            so their BatchNorm running statistics do not drift.
        loss: a :class:`fastap_lab.losses.objectives.FastAPObjective`.
    """

    stage = "fastap"

    def __init__(
        self,
        backbone,
        augment,
        loss,
        optimizer,
        scheduler=None,
        projector_dim: int = 2048,
        projector_layers: int = 3,
        embedding_dim: int = 256,
        pretrained: str | None = None,
        freeze_backbone: bool = True,
        freeze_projector: bool = False,
        **hardware,  # compile, channels_last: see StageModule
    ) -> None:
        super().__init__(augment, optimizer, scheduler, **hardware)
        self.backbone = backbone
        self.projector = Projector(backbone.out_dim, projector_dim, projector_layers)
        self.head = EmbeddingHead(projector_dim, embedding_dim)
        self.objective = loss
        if pretrained:
            self.load_pretrained(pretrained)
        self.frozen = [
            m for m, f in ((backbone, freeze_backbone), (self.projector, freeze_projector)) if f
        ]
        for part in self.frozen:
            part.requires_grad_(False).eval()

    def load_pretrained(self, path: str) -> None:
        """Load backbone weights from a SimSiam checkpoint (refusing another stage's)."""
        checkpoint = load_checkpoint(path, field="model.pretrained")
        stage = checkpoint_stage(checkpoint)
        if stage not in (None, "simsiam"):
            raise CheckpointError(
                f"model.pretrained={path}: a {stage} checkpoint, not a SimSiam one; to continue"
                " training it use ckpt_path=…, to start FastAP point at a SimSiam run"
            )
        load_submodule(self.backbone, checkpoint, "backbone", f"model.pretrained={path}")
        load_submodule(self.projector, checkpoint, "projector", f"model.pretrained={path}")

    def train(self, mode: bool = True) -> FastAPModule:
        """Set training mode, keeping the frozen parts in eval mode."""
        super().train(mode)
        for part in self.frozen:
            part.eval()
        return self

    def forward_normalized(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised float frames [B, C, H, W] -> unit embeddings [B, embedding_dim]."""
        return self.head(self.projector(self.backbone(images)))

    def on_fit_start(self) -> None:
        """Set the modules' modes before fitting (frozen parts in eval mode)."""
        # Lightning (>= 2.2) never calls .train() itself: it keeps the modes the module has
        # when fit starts (and restores them after each validation). Set them here, so frozen
        # parts run in eval mode (no BatchNorm drift) however the module was handled before.
        self.train()
        datamodule = self.trainer.datamodule
        if self.objective.positives == "surrogate" and datamodule is not None:
            self.objective.set_phase(training_phase(datamodule))
        if self.objective.positives != "labels" or datamodule is None:
            return
        if datamodule.frames.labels is None:
            raise ConfigError(
                "loss.positives=labels but the data has no labels; use loss.positives=views or temporal"
            )
        if datamodule.sampler != "m_per_class":
            raise ConfigError(
                f"loss.positives=labels with data.sampler={datamodule.sampler}: batches may hold no"
                " positives; set data.sampler=m_per_class"
            )

    def compute_loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """The stage's loss on one batch, with the share of anchors that have a positive.

        The stage's loss on one batch (also what the benchmarks' plain loop runs):
        ``loss`` and ``anchors_with_positive`` (share of anchors with at least one positive).
        """
        views = self.objective.num_views
        images = torch.cat([self.augment(batch["images"]) for _ in range(views)])
        embeddings = self.forward_normalized(images)
        items = {k: batch[k].repeat(views) for k in ("index", "label", "time", "group")}
        embeddings, items, anchors = self.gather_batch(embeddings, items)
        positives = self.objective.positive_mask(
            items["index"], items["label"], items["time"], items["group"]
        )
        # Soft binning at bins=100 needs distances finer than bf16 / fp16 resolve.
        with torch.autocast(self.device.type, enabled=False):
            loss = self.objective(embeddings.float(), positives, anchors=anchors)
        return {"loss": loss, "anchors_with_positive": positives[anchors].any(dim=1).float().mean()}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        """One FastAP step: the loss of the batch, logged."""
        parts = self.compute_loss(batch)
        loss = parts["loss"]
        self.check_finite(loss)
        n = batch["images"].shape[0] * self.objective.num_views
        self.log("train/loss_step", loss, on_step=True, prog_bar=True, logger=False)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        self.log(
            "train/fastap", 1 - loss, on_step=False, on_epoch=True, batch_size=n, sync_dist=True
        )
        self.log(
            "train/anchors_with_positive",
            parts["anchors_with_positive"],
            on_epoch=True,
            batch_size=n,
            sync_dist=True,
        )
        return loss

    def gather_batch(self, embeddings: torch.Tensor, items: dict[str, torch.Tensor]):
        """The global batch under DDP and the indices of this rank's rows.

        Under DDP: the global batch, with gradient through this rank's rows only, and the
        indices of this rank's rows (its anchors). One process: the batch itself.
        """
        n = embeddings.shape[0]
        # No trainer attached (a plain loop, a benchmark): one process.
        attached = getattr(self, "_trainer", True) is not None
        if not attached or self.trainer.world_size <= 1:
            return embeddings, items, torch.arange(n, device=embeddings.device)
        rank = self.global_rank
        gathered = self.all_gather(embeddings.detach())  # [W, n, D]
        gathered[rank] = embeddings
        items = {k: self.all_gather(v).flatten(0, 1) for k, v in items.items()}
        anchors = torch.arange(rank * n, (rank + 1) * n, device=embeddings.device)
        return gathered.flatten(0, 1), items, anchors

    def embedding_network(self) -> EmbeddingNetwork:
        """Backbone, projector and head: the head's output is already unit-norm."""
        return EmbeddingNetwork(self.backbone, self.projector, self.head, normalize=False)
