"""Retrieval metrics of the held-out frames during training (``val/mAP`` and friends).

The stage modules have no validation loop, so this callback evaluates at the end of every
``every_n_epochs``-th training epoch: it embeds the datamodule's evaluation split with
``pl_module.embed`` (eval mode, no gradients), ranks it all-vs-all with
:func:`fastap_lab.evaluation.split.evaluate_split` (the function evaluation uses) and logs ``val/mAP``,
``val/precision@k``, ``val/recall@k``, ``val/r_precision`` — so they land in metrics.csv and a
``ModelCheckpoint(monitor="val/mAP")`` can keep the best epoch (checkpoint callbacks run after
the others, so they see this epoch's value).

Under DDP every rank embeds a strided shard of the split; the shards are all-gathered
(``pl_module.all_gather``), so every rank ranks the same full set and logs the same numbers
(no ``sync_dist`` needed).
"""

from __future__ import annotations

import logging
import math

import lightning as L
import torch

from fastap_lab.evaluation.split import evaluate_split

log = logging.getLogger(__name__)


class RetrievalEvaluation(L.Callback):
    """Logs ``val/`` retrieval metrics of a split during training.

    Args:
        every_n_epochs: evaluate after epochs ``n-1, 2n-1, …`` (and never when 0).
        ks: cut-offs of precision@k / recall@k; those larger than the split's gallery are
            dropped (one info message), as evaluation does
            (:func:`fastap_lab.retrieval.metrics.cutoffs_within_gallery`).
        exclusion_window: same-video frames within this many time units of the query are left
            out of its gallery (None: the datamodule's split_gap).
        split: ``val`` (held-out frames) or ``all``.
    """

    def __init__(self, every_n_epochs=1, ks=(1, 5, 10, 20, 50), exclusion_window=None, split="val"):
        if split not in ("val", "all"):
            raise ValueError(f"RetrievalEvaluation split={split!r}: choose val or all")
        self.every_n_epochs, self.ks, self.split = int(every_n_epochs), tuple(ks), split
        self.exclusion_window = exclusion_window
        self._said: set[str] = set()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Every ``every_n_epochs`` epochs, log retrieval metrics of the configured split."""
        if self.every_n_epochs < 1 or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        datamodule = getattr(trainer, "datamodule", None)
        frames = getattr(datamodule, "frames", None)
        if frames is None or frames.labels is None:
            self._say_once("skipped", "retrieval evaluation skipped: the data has no labels")
            return
        index = datamodule.val_index if self.split == "val" else torch.arange(len(frames))
        if index.numel() < 2:
            self._say_once(
                "small", f"retrieval evaluation skipped: {index.numel()} {self.split} frame(s)"
            )
            return
        embeddings = self.embed_split(
            trainer, pl_module, frames.images, index, datamodule.eval_batch_size
        )
        for name, value in self.metrics(embeddings, frames, index, datamodule).items():
            pl_module.log(name, value, on_step=False, on_epoch=True)

    def embed_split(self, trainer, pl_module, images, index, batch_size) -> torch.Tensor:
        """Embeddings [M, D] of ``images[index]`` in ``index`` order, on ``pl_module.device``."""
        world, rank = trainer.world_size, trainer.global_rank
        per_rank = math.ceil(index.numel() / world)
        # Strided shards, padded to equal length (all_gather needs equal shapes) with a copy
        # of the last frame; the padding sorts last after the gather and is cut off.
        positions = torch.arange(rank, per_rank * world, world)
        shard = index[positions.clamp_max(index.numel() - 1)]
        if world > 1:
            share_buffers_of_rank_zero(trainer, pl_module)
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                parts = [
                    pl_module.embed(images[shard[s : s + batch_size]].to(pl_module.device))
                    for s in range(0, shard.numel(), batch_size)
                ]
        finally:
            pl_module.train(was_training)
        embeddings = torch.cat(parts).float()
        if world > 1:
            embeddings = pl_module.all_gather(embeddings).transpose(0, 1).flatten(0, 1)  # [W*n, D]
        return embeddings[: index.numel()]

    def metrics(self, embeddings, frames, index, datamodule) -> dict[str, float]:
        """The ``val/`` retrieval metrics of ``embeddings`` for the frames ``index``."""
        window = self.exclusion_window
        window = float(datamodule.split.get("gap", 0.0) if window is None else window)
        result = evaluate_split(
            embeddings, frames.labels[index], frames.times[index], frames.groups[index],
            exclusion_window=window, ks=self.ks,
        )  # fmt: skip
        if result.ks_note:
            self._say_once("ks", f"val/ metrics of the {self.split} split: {result.ks_note}")
        if result.label_warning:
            self._say_once("one_label", f"val/mAP of the {self.split} split: {result.label_warning}",
                           logging.WARNING)  # fmt: skip
        ks, summary = result.summary["ks"], result.summary
        names = ["mAP", "r_precision", *(f"{m}@{k}" for m in ("precision", "recall") for k in ks)]
        return {f"val/{name}": summary[name] for name in names}

    def _say_once(self, key: str, message: str, level: int = logging.INFO) -> None:
        if key not in self._said:
            self._said.add(key)
            log.log(level, message)


def share_buffers_of_rank_zero(trainer: L.Trainer, pl_module: L.LightningModule) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    Without SyncBatchNorm each rank updates its own running statistics in the last training
    step, so ranks would embed their shards with different models; rank 0's are the ones its
    checkpoint saves, so after this the metrics equal a single-process evaluation of it.
    """
    for buffer in pl_module.buffers():
        buffer.copy_(trainer.strategy.broadcast(buffer, src=0))
