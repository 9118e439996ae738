"""Batch sampling that guarantees same-label positives in every batch (M-per-class)."""

from __future__ import annotations

import torch
from torch.utils.data import Sampler

from fastap_lab.errors import ConfigError


class MPerClassBatchSampler(Sampler[list[int]]):
    """Batches of ``m`` frames from each of ``batch_size // m`` classes.

    Batches of ``batch_size // m`` classes with ``m`` frames each, so every anchor has
    ``m - 1`` positives. Positions index the dataset (0..len(labels)-1).

    An epoch draws ``len(labels) // batch_size`` batches; frames of small classes are reused
    (sampled with replacement) rather than skipping the class. Under DDP each rank takes every
    ``world_size``-th batch of the same seeded stream, so ranks never share a batch.

    Args:
        labels: int64 [N] labels of the dataset's frames.
        m: frames per class in a batch (>= 2).
        batch_size: multiple of ``m``.
        seed: the stream is ``seed + epoch`` (call :meth:`set_epoch`).
    """

    def __init__(
        self,
        labels: torch.Tensor,
        m: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if m < 2:
            raise ConfigError(f"data.m_per_class={m}: must be >= 2 so every anchor has a positive")
        if batch_size % m or batch_size < 2 * m:
            raise ConfigError(
                f"data.batch_size={batch_size}: must be a multiple of data.m_per_class={m} and hold"
                " at least 2 classes"
            )
        self.classes, self.members = self._group(labels)
        if len(self.classes) < 2:
            raise ConfigError("data.sampler=m_per_class: the training frames hold a single label")
        self.m, self.batch_size, self.seed = m, batch_size, seed
        self.rank, self.world_size, self.epoch = rank, world_size, 0
        self.num_batches = max(1, labels.numel() // batch_size // world_size)

    @staticmethod
    def _group(labels: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        classes = labels.unique()
        return classes, [(labels == c).nonzero().flatten() for c in classes]

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch the next batches are drawn for (Lightning calls it each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        per_batch = min(self.batch_size // self.m, len(self.classes))
        for step in range(self.num_batches * self.world_size):
            chosen = torch.randperm(len(self.classes), generator=generator)[:per_batch]
            batch = [self._draw(self.members[c], generator) for c in chosen.tolist()]
            if step % self.world_size == self.rank:
                yield torch.cat(batch).tolist()

    def _draw(self, members: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if members.numel() >= self.m:
            return members[torch.randperm(members.numel(), generator=generator)[: self.m]]
        return members[torch.randint(members.numel(), (self.m,), generator=generator)]


class EpochShuffleSampler(Sampler[int]):
    """A random permutation per epoch, drawn from ``seed + epoch``.

    A random permutation of ``range(n)`` per epoch, drawn from ``seed + epoch`` (Lightning
    calls :meth:`set_epoch` before each epoch) rather than from the global RNG, so the order
    of an epoch is the same whether or not the run was resumed from a checkpoint.
    ``length`` (<= n, default n): only the first ``length`` positions of each permutation.
    """

    def __init__(self, n: int, seed: int = 0, length: int | None = None) -> None:
        self.n, self.seed, self.epoch = n, seed, 0
        self.length = n if length is None else length

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch the next permutation is drawn for (Lightning calls it each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from torch.randperm(self.n, generator=generator)[: self.length].tolist()
