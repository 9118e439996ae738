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


def _remap_only(**kwargs) -> FrameAugment:
    return FrameAugment(
        max_shift=0, max_rotation=0, brightness=0, contrast=(1, 1), gamma=(1, 1), noise=0, blur=0,
        mean=0.0, std=1.0, **kwargs,
    )  # fmt: skip


def test_remap_is_a_per_sample_intensity_curve_that_moves_nothing():
    torch.manual_seed(0)
    levels = torch.tensor([0, 60, 128, 200, 255], dtype=torch.uint8)
    x = levels.repeat_interleave(8).view(1, 1, 5, 8).repeat(32, 1, 1, 1)  # one level per row
    out = _remap_only(remap=1.0, remap_knots=4, remap_strength=(1.0, 1.0))(x)
    # A function of intensity alone: every pixel of one level maps to one value, rows stay put.
    assert torch.allclose(out, out[..., :1].expand_as(out), atol=1e-6)
    assert (out >= 0).all() and (out <= 1).all()
    # At a knot the value is the drawn one; between knots, linear interpolation.
    knot_rows = out[:, 0, [0, 2, 4], 0]  # 0, 128 ~ 0.502, 255 -> knots 0, ~2, 4
    assert not torch.allclose(knot_rows, x[:, 0, [0, 2, 4], 0].float() / 255, atol=0.05)
    # Not monotonic: some samples make a darker tissue brighter than a lighter one.
    swapped = (out[:, 0, 1, 0] > out[:, 0, 3, 0]).float().mean()
    assert 0.2 < swapped < 0.8


def test_remap_probability_and_strength_zero_keep_the_image():
    x = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8)
    for kwargs in ({"remap": 0.0}, {"remap": 1.0, "remap_strength": (0.0, 0.0)}):
        aug = _remap_only(**kwargs)
        assert torch.allclose(aug(x), x.float() / 255, atol=1e-6)


def test_remap_bad_values_name_the_field():
    with pytest.raises(ConfigError, match="augment.remap"):
        FrameAugment(remap=1.5)
    with pytest.raises(ConfigError, match="remap_knots"):
        FrameAugment(remap=0.5, remap_knots=0)


def test_erase_blanks_one_rectangle_of_the_drawn_size_per_sample():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 40, 40, dtype=torch.uint8)
    out = _remap_only(erase=1.0, erase_size=(0.25, 0.5))(x)
    for image in out[:, 0]:
        changed = image > 1e-4  # the intensity step floors pixels at 1e-6
        rows, cols = changed.any(1).nonzero().flatten(), changed.any(0).nonzero().flatten()
        assert changed.sum() == len(rows) * len(cols)  # one filled axis-aligned rectangle
        assert (
            0.25 * 40 - 1 <= len(rows) <= 0.5 * 40 + 1
            and 0.25 * 40 - 1 <= len(cols) <= 0.5 * 40 + 1
        )
    kept = _remap_only(erase=0.0)(x)
    assert (kept <= 1e-4).all()
    with pytest.raises(ConfigError, match="augment.erase"):
        FrameAugment(erase=2.0)
