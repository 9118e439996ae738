"""Augmentation audit: does each augmentation op move an embedding less than breathing does?

SimSiam learns to ignore whatever its augmentations change. An op that changes a frame's
embedding as much as going from end-exhale to end-inspiration teaches the network to ignore
breathing itself (e.g. a 2-pixel shift on a sequence whose diaphragm moves 2 pixels). The audit
applies each op of a :class:`~fastap_lab.data.augment.FrameAugment` alone, at the strength the
preset configures, and compares how far it moves each frame's embedding with the breathing
reference distance:

* ``op_distance``: median over frames of ``|| e(op(x)) - e(x) ||`` (unit embeddings, so 0..2);
  an op that fires with a probability (hflip, blur, remap, erase) is applied to every frame;
* ``breathing_distance``: median ``|| e(x_i) - e(x_j) ||`` over pairs with ``x_i`` in the lowest
  and ``x_j`` in the highest ``extreme_fraction`` of the respiratory phase (end-exhale against
  end-inspiration: one breathing cycle's amplitude);
* ``floor_distance``: the same over pairs inside one extreme (frames at the same phase): the
  spread nuisance alone already causes;
* ``ratio = op_distance / breathing_distance``; an op is ``safe`` below :data:`SAFE_RATIO`.

With the pixel embedder (the default of ``python -m fastap_lab.audit``) the audit measures the
images themselves, model-free; with a checkpoint it measures what that network has learned.
Pure core: tensors in, rows out; no Lightning or Hydra.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import torch

from fastap_lab.data.augment import FrameAugment
from fastap_lab.errors import DataError

# An op moving an embedding by half of the exhale-to-inspiration distance already makes two
# views of one frame as far apart as frames a quarter of the breathing range apart, which is
# the label tolerance scale of the phantoms (0.1 .. 0.25 of the range): beyond it, unsafe.
SAFE_RATIO = 0.5

# FrameAugment keyword arguments that switch every op off (normalisation only).
IDENTITY = dict(
    max_shift=0.0, scale=(1.0, 1.0), aspect=(1.0, 1.0), max_rotation=0.0, hflip=0.0,
    brightness=0.0, contrast=(1.0, 1.0), gamma=(1.0, 1.0), noise=0.0, blur=0.0,
    remap=0.0, erase=0.0,
)  # fmt: skip

# op name -> the FrameAugment arguments that make up that op (taken from the audited preset).
OPS: dict[str, tuple[str, ...]] = {
    "shift": ("max_shift",),
    "zoom": ("scale",),
    "aspect": ("aspect",),
    "rotation": ("max_rotation",),
    "hflip": ("hflip",),
    "brightness": ("brightness",),
    "contrast": ("contrast",),
    "gamma": ("gamma",),
    "noise": ("noise",),
    "blur": ("blur", "blur_sigma"),
    "remap": ("remap", "remap_knots", "remap_strength"),
    "erase": ("erase", "erase_size"),
}

EmbedFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AuditRow:
    """One op of the audited preset (distances between unit embeddings, 0..2)."""

    op: str
    setting: str
    op_distance: float
    breathing_distance: float
    floor_distance: float
    ratio: float
    safe: bool

    def as_dict(self) -> dict:
        """The row as a plain dict (for audit.json / audit.csv)."""
        return asdict(self)


# Ops that fire with a probability: the audit measures what they do when they fire.
PROBABILITIES = ("hflip", "blur", "remap", "erase")


def single_op_kwargs(preset: Mapping, op: str) -> dict | None:
    """FrameAugment kwargs that switch on ``op`` alone, on every frame.

    FrameAugment kwargs with only ``op`` on, as ``preset`` sets it and firing on every frame;
    None if the preset has the op off.
    """
    chosen = {name: preset[name] for name in OPS[op] if name in preset}
    off = {k: v for k, v in IDENTITY.items() if k in OPS[op]}
    if all(_same(chosen.get(k, v), v) for k, v in off.items()):
        return None
    fire = {name: 1.0 for name in PROBABILITIES if name in OPS[op]}
    return {**IDENTITY, **chosen, **fire, "mean": 0.0, "std": 1.0}


def _same(a, b) -> bool:
    if isinstance(b, tuple):
        return tuple(float(v) for v in a) == tuple(float(v) for v in b)
    return float(a) == float(b)


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    return (images * 255.0).round().clamp(0, 255).to(torch.uint8)


def _extreme_indices(phase: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    count = max(2, int(round(fraction * phase.numel())))
    order = phase.argsort()
    return order[:count], order[-count:]


def _median_pair_distance(a: torch.Tensor, b: torch.Tensor, skip_diagonal: bool) -> float:
    distance = torch.cdist(a.double(), b.double())
    if skip_diagonal:
        distance = distance[~torch.eye(a.shape[0], dtype=torch.bool)]
    return float(distance.median())


def breathing_distances(
    embeddings: torch.Tensor, phase: torch.Tensor, extreme_fraction: float = 0.1
) -> tuple[float, float]:
    """(breathing, floor) distances of ``embeddings`` [N, D] with respiratory ``phase`` [N].

    ``breathing``: median distance between the lowest and highest ``extreme_fraction`` of the
    phase; ``floor``: median distance between distinct frames within those extremes.
    """
    if not 0 < extreme_fraction <= 0.5:
        raise DataError(f"extreme_fraction={extreme_fraction}: need 0 < extreme_fraction <= 0.5")
    if float(phase.max() - phase.min()) <= 0:
        raise DataError("the respiratory phase is constant: nothing breathes in this sequence")
    low, high = _extreme_indices(phase, extreme_fraction)
    breathing = _median_pair_distance(embeddings[low], embeddings[high], skip_diagonal=False)
    floor_low = _median_pair_distance(embeddings[low], embeddings[low], skip_diagonal=True)
    floor_high = _median_pair_distance(embeddings[high], embeddings[high], skip_diagonal=True)
    return breathing, 0.5 * (floor_low + floor_high)


def audit_augmentations(
    images: torch.Tensor,
    phase: torch.Tensor,
    embed: EmbedFn,
    preset: Mapping,
    *,
    extreme_fraction: float = 0.1,
    repeats: int = 2,
    seed: int = 0,
) -> list[AuditRow]:
    """Audit every op that ``preset`` (FrameAugment kwargs) switches on.

    Args:
        images: uint8 [N, C, H, W] frames of one sequence.
        phase: [N] respiratory phase (ground-truth displacement or a surrogate; its sign and
            scale do not matter, only which frames are at the two ends).
        embed: uint8 frames [B, C, H, W] -> embeddings [B, D] (L2-normalised here), e.g. an
            evaluation :class:`~fastap_lab.evaluation.embed.Embedder`'s ``embed``. Augmented
            frames are rounded back to uint8 for it (an error of at most 1/510 per pixel).
        preset: FrameAugment keyword arguments (an ``augment`` config without ``_target_``).
        extreme_fraction: share of frames at each end of ``phase`` taken as the two breathing
            extremes (their median distance is what an op's distance is compared with).
        repeats: random draws of each op per frame (their distances are pooled).
        seed: seed of the ops' random draws.

    Returns:
        One :class:`AuditRow` per op that is on in ``preset``, in :data:`OPS` order.
    """
    if images.shape[0] != phase.numel() or images.shape[0] < 8:
        raise DataError(
            f"augmentation audit: {images.shape[0]} frames and {phase.numel()} phase values;"
            " need the same number, at least 8"
        )
    with torch.no_grad():
        clean = torch.nn.functional.normalize(embed(images).double(), dim=1)
        breathing, floor = breathing_distances(clean, phase, extreme_fraction)
        rows = []
        for op in OPS:
            kwargs = single_op_kwargs(preset, op)
            if kwargs is None:
                continue
            augment = FrameAugment(**kwargs)  # mean 0, std 1: its output stays in [0, 1] units
            torch.manual_seed(seed)
            moved = [
                (
                    torch.nn.functional.normalize(embed(_to_uint8(augment(images))).double(), dim=1)
                    - clean
                ).norm(dim=1)
                for _ in range(repeats)
            ]
            distance = float(torch.cat(moved).median())
            ratio = distance / breathing if breathing > 0 else float("inf")
            setting = ", ".join(f"{k}={preset[k]}" for k in OPS[op] if k in preset)
            rows.append(
                AuditRow(op, setting, distance, breathing, floor, ratio, ratio < SAFE_RATIO)
            )
    return rows
