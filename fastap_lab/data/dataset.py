"""Map-style dataset over an in-memory FrameSet that yields whole batches at once."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

NO_LABEL = -1  # label value in batches drawn from data without labels


class FrameBatchDataset(Dataset):
    """Frames ``frames.images[index]`` as batches ``{"images", "index", "label", "time", "group"}``.

    ``images`` stay uint8 [B, C, H, W]; augmentation and normalisation run on the device
    (see :class:`fastap_lab.data.augment.FrameAugment`). ``index`` is the position in the full
    FrameSet, so embeddings can be matched back to frame names, labels and times.
    """

    def __init__(self, frames, index: torch.Tensor | None = None) -> None:
        self.frames = frames
        self.index = torch.arange(len(frames)) if index is None else index.long()

    def __len__(self) -> int:
        return self.index.numel()

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([position])

    def __getitems__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        # DataLoader calls this once per batch (auto-collation), avoiding B tiny copies.
        index = self.index[torch.as_tensor(positions, dtype=torch.long)]
        labels = self.frames.labels
        return {
            "images": self.frames.images[index],
            "index": index,
            "label": labels[index] if labels is not None else torch.full_like(index, NO_LABEL),
            "time": self.frames.times[index],
            "group": self.frames.groups[index],
        }


def collate_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The dataset already returns a collated batch; a module-level function so workers can pickle it."""
    return batch
