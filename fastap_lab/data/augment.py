"""Batched frame augmentation as tensor ops, so it runs on the accelerator with the model.

Input is the raw uint8 batch ``[B, C, H, W]``; output is float, normalised with ``mean`` /
``std``. Every sample draws its own parameters; one ``grid_sample`` does all geometry and a
separable grouped convolution does per-sample blur.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fastap_lab.data.preprocess import normalize_images
from fastap_lab.errors import ConfigError


def _uniform(low: float, high: float, n: int, device: torch.device) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(low, high)


def _check_range(
    name: str, value: tuple[float, float], low: float, high: float = math.inf
) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not low <= lo <= hi <= high:
        bound = "" if high == math.inf else f" <= {high}"
        raise ConfigError(f"augment.{name}={[lo, hi]}: need {low} <= min <= max{bound}")
    return lo, hi


def _check_probability(name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"augment.{name}={value}: a probability, need 0 <= {name} <= 1")
    return float(value)


class FrameAugment(nn.Module):
    """Random geometry + intensity augmentation of a uint8 frame batch.

    Args:
        max_shift: max translation as a fraction of the image size (each axis).
        scale: isotropic zoom range; ``[1, 1]`` disables zoom.
        aspect: aspect-ratio range applied to the vertical axis; ``[1, 1]`` keeps shapes.
        max_rotation: max in-plane rotation in degrees.
        hflip: probability of a horizontal flip.
        brightness: max additive offset (intensity units, image in [0, 1]).
        contrast: multiplicative gain range about the image mean.
        gamma: gamma range applied to intensities in [0, 1].
        noise: max std of additive Gaussian noise (each sample draws its std in [0, noise]).
        blur: probability of a Gaussian blur with sigma (pixels) drawn from ``blur_sigma``.
        remap: probability of a random intensity curve: a piecewise-linear map of [0, 1]
            through ``remap_knots`` + 1 evenly spaced knots with values drawn uniformly in
            [0, 1] (not monotonic), blended with the identity by a weight drawn in
            ``remap_strength``. It swaps which tissue is brighter, the way another imaging
            contrast (MRI weighting, ultrasound gain curve) does, without moving anything.
        erase: probability of erasing one random rectangle (side lengths drawn as fractions of
            the image in ``erase_size``) to a random grey level, so no single structure (e.g. a
            bright heart) can be the only cue; the rest of the frame keeps the breathing signal.
        mean, std: normalisation applied last (also by :meth:`normalize` for evaluation).
    """

    def __init__(
        self,
        max_shift: float = 0.03,
        scale: tuple[float, float] = (1.0, 1.0),
        aspect: tuple[float, float] = (1.0, 1.0),
        max_rotation: float = 3.0,
        hflip: float = 0.0,
        brightness: float = 0.2,
        contrast: tuple[float, float] = (0.6, 1.4),
        gamma: tuple[float, float] = (0.7, 1.4),
        noise: float = 0.05,
        blur: float = 0.5,
        blur_sigma: tuple[float, float] = (0.3, 1.2),
        remap: float = 0.0,
        remap_knots: int = 4,
        remap_strength: tuple[float, float] = (0.5, 1.0),
        erase: float = 0.0,
        erase_size: tuple[float, float] = (0.2, 0.4),
        mean: float = 0.3,
        std: float = 0.25,
    ) -> None:
        super().__init__()
        self.max_shift, self.max_rotation = float(max_shift), float(max_rotation)
        self.scale = _check_range("scale", scale, 1e-3)
        self.aspect = _check_range("aspect", aspect, 1e-3)
        self.contrast = _check_range("contrast", contrast, 0.0)
        self.gamma = _check_range("gamma", gamma, 1e-3)
        self.blur_sigma = _check_range("blur_sigma", blur_sigma, 1e-3)
        self.hflip, self.brightness = float(hflip), float(brightness)
        self.noise, self.blur = float(noise), float(blur)
        self.remap = _check_probability("remap", remap)
        self.remap_strength = _check_range("remap_strength", remap_strength, 0.0, 1.0)
        if int(remap_knots) < 1:
            raise ConfigError(f"augment.remap_knots={remap_knots}: need remap_knots >= 1")
        self.remap_knots = int(remap_knots)
        self.erase = _check_probability("erase", erase)
        self.erase_size = _check_range("erase_size", erase_size, 0.0, 1.0)
        if std <= 0:
            raise ConfigError(f"augment.std={std}: must be > 0")
        self.mean, self.std = float(mean), float(std)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, C, H, W] -> float [B, C, H, W] scaled to [0, 1] then standardised."""
        return normalize_images(images, self.mean, self.std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, C, H, W] -> augmented, normalised float [B, C, H, W]."""
        x = images.float() / 255.0
        x = self._geometry(x)
        x = self._remap(x)
        x = self._intensity(x)
        x = self._blur(x)
        x = self._erase(x)
        if self.noise > 0:
            sigma = _uniform(0.0, self.noise, x.shape[0], x.device).view(-1, 1, 1, 1)
            x = x + sigma * torch.randn_like(x)
        return (x - self.mean) / self.std

    def _geometry(self, x: torch.Tensor) -> torch.Tensor:
        n, device = x.shape[0], x.device
        if (
            self.max_shift == 0
            and self.max_rotation == 0
            and self.hflip == 0
            and (self.scale == (1.0, 1.0) and self.aspect == (1.0, 1.0))
        ):
            return x
        angle = _uniform(-1, 1, n, device) * math.radians(self.max_rotation)
        # A zoom-in (scale > 1) samples a smaller source window: theta scales by 1 / zoom.
        zoom = _uniform(*self.scale, n, device)
        sx = 1.0 / zoom
        sy = sx / _uniform(*self.aspect, n, device)
        flip = torch.where(torch.rand(n, device=device) < self.hflip, -1.0, 1.0)
        shift = _uniform(-1, 1, 2 * n, device).view(n, 2) * 2 * self.max_shift
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack(
            [
                torch.stack([sx * cos * flip, -sy * sin, shift[:, 0]], dim=1),
                torch.stack([sx * sin * flip, sy * cos, shift[:, 1]], dim=1),
            ],
            dim=1,
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _remap(self, x: torch.Tensor) -> torch.Tensor:
        if self.remap <= 0:
            return x
        n, knots = x.shape[0], self.remap_knots
        values = torch.rand(n, knots + 1, device=x.device, dtype=x.dtype)
        position = x.clamp(0.0, 1.0).flatten(1) * knots
        left = position.floor().clamp_max(knots - 1)
        frac = position - left
        left = left.long()
        curve = torch.lerp(values.gather(1, left), values.gather(1, left + 1), frac)
        weight = _uniform(*self.remap_strength, n, x.device).view(-1, 1)
        weight = torch.where(torch.rand(n, 1, device=x.device) < self.remap, weight, 0.0)
        return torch.lerp(x.flatten(1), curve, weight.to(x.dtype)).view_as(x)

    def _erase(self, x: torch.Tensor) -> torch.Tensor:
        if self.erase <= 0:
            return x
        n, _, h, w = x.shape
        size = _uniform(*self.erase_size, 2 * n, x.device).view(n, 2)  # (height, width) fractions
        corner = torch.rand(n, 2, device=x.device) * (1 - size)
        rows = torch.arange(h, device=x.device) / h
        cols = torch.arange(w, device=x.device) / w
        inside_rows = (rows >= corner[:, :1]) & (rows < corner[:, :1] + size[:, :1])  # [n, h]
        inside_cols = (cols >= corner[:, 1:]) & (cols < corner[:, 1:] + size[:, 1:])  # [n, w]
        inside = inside_rows[:, None, :, None] & inside_cols[:, None, None, :]
        chosen = torch.rand(n, 1, 1, 1, device=x.device) < self.erase
        fill = torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype)
        return torch.where(inside & chosen, fill, x)

    def _intensity(self, x: torch.Tensor) -> torch.Tensor:
        n, device = x.shape[0], x.device
        gain = _uniform(*self.contrast, n, device).view(-1, 1, 1, 1)
        offset = _uniform(-self.brightness, self.brightness, n, device).view(-1, 1, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * gain + mean + offset).clamp(0.0, 1.0)
        gamma = _uniform(*self.gamma, n, device).view(-1, 1, 1, 1)
        return x.clamp_min(1e-6) ** gamma

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        if self.blur <= 0:
            return x
        n, c, h, w = x.shape
        sigma = _uniform(*self.blur_sigma, n, x.device)
        sigma = torch.where(torch.rand(n, device=x.device) < self.blur, sigma, 0.0)
        radius = max(1, math.ceil(3 * self.blur_sigma[1]))
        taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
        # sigma 0 gives a delta kernel: unblurred samples go through the same conv.
        kernel = torch.exp(-(taps**2) / (2 * sigma.clamp_min(1e-3).view(-1, 1) ** 2))
        kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)
        flat = x.reshape(1, n * c, h, w)
        flat = F.pad(flat, (radius, radius, radius, radius), mode="replicate")
        flat = F.conv2d(flat, kernel.view(n * c, 1, 1, -1), groups=n * c)
        flat = F.conv2d(flat, kernel.view(n * c, 1, -1, 1), groups=n * c)
        return flat.view(n, c, h, w)
