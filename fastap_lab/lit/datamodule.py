"""LightningDataModule over the frames sources: batches of the frames data/loading.py splits."""

from __future__ import annotations

import logging

import lightning as L
import torch
from torch.utils.data import DataLoader

from fastap_lab.data.dataset import FrameBatchDataset, collate_batch
from fastap_lab.data.loading import check_data_values, load_split, prepare_source
from fastap_lab.data.sampling import EpochShuffleSampler, MPerClassBatchSampler
from fastap_lab.errors import ConfigError

log = logging.getLogger(__name__)


class FramesDataModule(L.LightningDataModule):
    """The Lightning data module of a run's frames and their splits.

    Frames from ``root`` / ``video`` / ``path`` (DICOM, NIfTI) / ``phantom``; see
    ``conf/data/frames.yaml`` for fields.
    """

    def __init__(
        self,
        root=None,
        video=None,
        labels_csv=None,
        phantom=None,
        cache_dir=".",
        channels: int = 1,
        image_size: int = 64,
        require_labels: bool = True,
        split: str = "blocks",
        val_fraction: float = 0.2,
        num_blocks: int = 10,
        split_gap: float = 0.0,
        batch_size: int = 128,
        eval_batch_size: int = 256,
        sampler: str = "random",
        m_per_class: int = 4,
        drop_last: bool = True,
        num_workers: int = 0,
        register: bool = False,
        path=None,
        format=None,
        series=None,
        window="auto",
        slice=None,
        fps=None,
    ) -> None:
        super().__init__()
        self.source = dict(
            root=root, video=video, labels_csv=labels_csv, phantom=phantom, cache_dir=cache_dir,
            channels=channels, image_size=image_size, require_labels=require_labels, path=path,
            format=format, series=series, window=window, slice=slice, fps=fps,
        )  # fmt: skip
        self.split = dict(
            split=split, val_fraction=val_fraction, num_blocks=num_blocks, gap=split_gap
        )
        # Checked here, not at setup(), so a bad value fails before any data is generated.
        check_data_values(
            sampler=sampler, split=split, val_fraction=val_fraction, batch_size=batch_size,
            eval_batch_size=eval_batch_size, register=register,
        )  # fmt: skip
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.sampler, self.m_per_class = sampler, m_per_class
        self.drop_last, self.num_workers = drop_last, num_workers
        self.register = register
        self.frames = None

    def prepare_data(self) -> None:
        """Generate the phantom once, on one process, when it is the data source."""
        # Runs on one process: the phantom is generated once, before ranks read it.
        prepare_source(self.source)

    def setup(self, stage: str | None = None) -> None:
        """Load the frames (once), register them if asked, and split them."""
        if self.frames is not None:
            return
        self.frames, self.train_index, self.val_index = load_split(
            self.source, self.split, self.register
        )
        if self.drop_last and self.batch_size > self.train_index.numel():
            raise ConfigError(
                f"data.batch_size={self.batch_size} is larger than the {self.train_index.numel()}"
                " training frames and data.drop_last=true, so no batch would run; lower"
                " data.batch_size or set data.drop_last=false"
            )

    def _loader(self, index: torch.Tensor, *, train: bool) -> DataLoader:
        # Training order comes from (seed, epoch) alone, and the loader gets its own generator
        # so creating it never consumes the global RNG: a resumed run sees the same batches.
        seed = torch.initial_seed() % 2**31
        sampler = (
            EpochShuffleSampler(index.numel(), seed, self._frames_per_epoch()) if train else None
        )
        return DataLoader(
            FrameBatchDataset(self.frames, index),
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=sampler,
            generator=torch.Generator().manual_seed(seed),
            drop_last=self.drop_last and train,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_batch,
        )

    def train_dataloader(self) -> DataLoader:
        """Training batches: random, or ``m`` frames per class (data.sampler)."""
        if self.sampler == "random":
            return self._loader(self.train_index, train=True)
        if self.frames.labels is None:
            raise ConfigError("data.sampler=m_per_class needs labels; the data has none")
        trainer = self.trainer
        batches = MPerClassBatchSampler(
            self.frames.labels[self.train_index],
            self.m_per_class,
            self.batch_size,
            seed=torch.initial_seed() % 2**31,
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
        )
        return DataLoader(
            FrameBatchDataset(self.frames, self.train_index),
            batch_sampler=batches,
            generator=torch.Generator().manual_seed(torch.initial_seed() % 2**31),
            num_workers=self.num_workers,
            collate_fn=collate_batch,
        )

    def _frames_per_epoch(self) -> int:
        """Training frames drawn per epoch.

        All of them, unless data.drop_last=false would leave a last batch of 1 frame (on some rank, under DDP), which BatchNorm cannot train on:
        then just enough frames (a different random choice each epoch) are left out.
        """
        count = self.train_index.numel()
        if count < 2:
            raise ConfigError(
                f"data: {count} training frame(s) after the split; training needs at least 2"
                " (lower data.val_fraction or data.split_gap, or use data.split=none)"
            )
        world = self.trainer.world_size if self.trainer is not None else 1
        per_rank = -(-count // world)  # DistributedSampler pads every rank to this many
        if self.drop_last or per_rank % self.batch_size != 1:
            return count
        drawn = (per_rank - 1) * world
        if drawn == 0:
            raise ConfigError(
                f"data: {count} training frames for {world} processes leave 1 frame per batch;"
                " BatchNorm needs 2: use fewer devices or more training frames"
            )
        log.warning(
            "data.drop_last=false: %d training frames in batches of %d would end with a batch of"
            " 1 frame, which BatchNorm cannot train on; %d frame(s) left out per epoch (a"
            " different random choice each epoch)",
            count, self.batch_size, count - drawn,
        )  # fmt: skip
        return drawn

    def val_dataloader(self) -> DataLoader:
        """Validation frames in order."""
        return self._loader(self.val_index, train=False)

    def all_dataloader(self) -> DataLoader:
        """Every frame in order (for embedding export / evaluation on all frames)."""
        return self._loader(torch.arange(len(self.frames)), train=False)
