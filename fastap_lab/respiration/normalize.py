"""Intensity normalisation of frames before the embedding: gain, gamma and bias-field invariant.

``log(frame)`` turns a per-frame gain and a smooth multiplicative bias field into additive
terms, and a gamma into a scale. Subtracting a heavily blurred copy (the log of dividing by it)
removes the gain and the bias field; a per-frame robust z-score (median / MAD) then removes the
gamma's scale, or a per-frame rank transform removes any monotone intensity mapping.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fastap_lab.respiration.register import log_frames

METHODS = ("zscore", "rank", "none")


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of float [N, H, W] (replicated borders); sigma <= 0: unchanged."""
    if sigma <= 0:
        return images
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    # float32: a smoothing kernel needs no more, and double convolutions are several times slower
    x = F.pad(images[:, None].float(), (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    return F.conv2d(x, kernel.view(1, 1, -1, 1))[:, 0].to(images.dtype)


def robust_zscore(images: torch.Tensor) -> torch.Tensor:
    """Per image: (x - median) / (1.4826 MAD), float [N, H, W] -> [N, H, W]."""
    flat = images.flatten(1)
    median = flat.median(dim=1, keepdim=True).values
    mad = (flat - median).abs().median(dim=1, keepdim=True).values
    scale = (1.4826 * mad).clamp_min(1e-12)
    return ((flat - median) / scale).view_as(images)


def rank_normalise(images: torch.Tensor) -> torch.Tensor:
    """Per image: each pixel's rank mapped to (-0.5, 0.5), float [N, H, W] -> [N, H, W]."""
    flat = images.flatten(1)
    ranks = flat.argsort(dim=1).argsort(dim=1).to(images.dtype)
    return ((ranks + 0.5) / flat.shape[1] - 0.5).view_as(images)


def normalise_intensity(
    frames: torch.Tensor, bias_sigma: float, method: str = "zscore", smooth_sigma: float = 0.0
) -> torch.Tensor:
    """Gain / gamma / bias-field invariant version of the frames.

    Args:
        frames: float [N, H, W], non-negative intensities (registered already, if wanted).
        bias_sigma: pixels; blur of the copy that is divided out (<= 0: no bias removal).
        method: ``zscore`` (robust, per frame), ``rank`` (per frame) or ``none``.
        smooth_sigma: pixels; light blur after the bias removal against noise and speckle.

    Returns:
        float64 [N, H, W].
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}: choose one of {list(METHODS)}")
    logs = log_frames(frames)
    if bias_sigma > 0:
        logs = logs - gaussian_blur(logs, bias_sigma)
    logs = gaussian_blur(logs, smooth_sigma)
    if method == "zscore":
        return robust_zscore(logs)
    if method == "rank":
        return rank_normalise(logs)
    return logs
