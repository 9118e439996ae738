"""The augmentation audit flags ops that move an embedding as far as breathing does."""

import pytest
import torch

from fastap_lab.analysis.augment_audit import (
    IDENTITY,
    audit_augmentations,
    breathing_distances,
    single_op_kwargs,
)
from fastap_lab.errors import DataError


def _breathing_square(n: int = 40, size: int = 32, travel_px: int = 2) -> tuple:
    """A bright square whose row moves by ``travel_px`` over the phase range 0..1."""
    generator = torch.Generator().manual_seed(0)
    phase = torch.rand(n, generator=generator)
    images = torch.full((n, 1, size, size), 40, dtype=torch.uint8)
    for i, p in enumerate(phase):
        top = 10 + int(round(float(p) * travel_px))
        images[i, 0, top : top + 8, 12:20] = 220
    return images, phase


def _pixels(images: torch.Tensor) -> torch.Tensor:
    return images.flatten(1).float() / 255.0 - 0.5


def test_large_shift_is_unsafe_and_mild_noise_is_safe():
    images, phase = _breathing_square()
    preset = {"max_shift": 0.25, "noise": 0.01}  # 8 px shifts vs 2 px of breathing
    rows = {row.op: row for row in audit_augmentations(images, phase, _pixels, preset)}
    assert set(rows) == {"shift", "noise"}
    assert not rows["shift"].safe and rows["shift"].ratio > 1.0
    assert rows["noise"].safe and rows["noise"].ratio < 0.2
    assert rows["shift"].breathing_distance == rows["noise"].breathing_distance > 0


def test_ops_switched_off_are_not_audited_and_probabilistic_ops_fire():
    assert single_op_kwargs({"max_shift": 0.0}, "shift") is None
    assert single_op_kwargs({"blur": 0.0, "blur_sigma": (0.3, 1.2)}, "blur") is None
    kwargs = single_op_kwargs({"blur": 0.2, "blur_sigma": (1.0, 2.0), "noise": 0.3}, "blur")
    assert kwargs["blur"] == 1.0 and kwargs["blur_sigma"] == (1.0, 2.0)
    assert kwargs["noise"] == IDENTITY["noise"]  # the other ops stay off


def test_breathing_distance_exceeds_floor_when_the_phase_shows():
    images, phase = _breathing_square(travel_px=6)
    embeddings = torch.nn.functional.normalize(_pixels(images).double(), dim=1)
    breathing, floor = breathing_distances(embeddings, phase)
    assert breathing > floor + 0.5


def test_constant_phase_and_mismatched_lengths_are_refused():
    images, phase = _breathing_square()
    with pytest.raises(DataError, match="constant"):
        audit_augmentations(images, torch.zeros_like(phase), _pixels, {"noise": 0.1})
    with pytest.raises(DataError, match="same number"):
        audit_augmentations(images, phase[:-1], _pixels, {"noise": 0.1})
