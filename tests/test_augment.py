"""Batched augmentation: shapes, per-sample randomness, motion-safe geometry."""

from __future__ import annotations

import pytest
import torch

from fastap_lab.data.augment import FrameAugment
from fastap_lab.errors import ConfigError


def _bar_image(row: int, size: int = 32) -> torch.Tensor:
    img = torch.zeros(1, 1, size, size, dtype=torch.uint8)
    img[..., row : row + 2, :] = 255
    return img


def test_output_is_normalised_float_of_same_shape():
    x = torch.randint(0, 256, (6, 3, 24, 24), dtype=torch.uint8)
    out = FrameAugment()(x)
    assert out.shape == x.shape and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_identity_settings_equal_normalize():
    aug = FrameAugment(
        max_shift=0, max_rotation=0, brightness=0, contrast=(1, 1), gamma=(1, 1), noise=0, blur=0
    )
    x = torch.randint(1, 256, (4, 1, 16, 16), dtype=torch.uint8)
    assert torch.allclose(aug(x), aug.normalize(x), atol=1e-5)


def test_samples_get_different_parameters():
    x = _bar_image(10).repeat(8, 1, 1, 1)
    out = FrameAugment()(x)
    assert (out[1:] - out[:1]).abs().flatten(1).amax(dim=1).min() > 1e-3


def _bar_row(img: torch.Tensor) -> float:
    profile = img.mean(dim=(0, 2))  # mean over channels and columns -> [H]
    weights = profile - profile.min()
    return float((weights * torch.arange(len(weights))).sum() / weights.sum())


def test_motion_safe_keeps_vertical_position_simclr_does_not():
    # The breathing label is the diaphragm's vertical position: the default preset may move
    # it by ~max_shift only, the natural-image preset moves it much more.
    torch.manual_seed(0)
    bars = _bar_image(14).repeat(64, 1, 1, 1)
    safe = FrameAugment(noise=0, blur=0)
    strong = FrameAugment(
        noise=0, blur=0, max_shift=0.15, scale=(0.5, 1.0), aspect=(0.75, 1.33), max_rotation=15
    )
    safe_moves = [abs(_bar_row(img) - 14.5) for img in safe(bars)]
    strong_moves = [abs(_bar_row(img) - 14.5) for img in strong(bars)]
    assert max(safe_moves) <= 32 * 0.03 + 1.0
    assert max(strong_moves) > 2 * max(safe_moves)


def test_bad_range_names_the_field():
    with pytest.raises(ConfigError, match="augment.contrast"):
        FrameAugment(contrast=(1.5, 0.5))
