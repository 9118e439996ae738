"""Rigid in-plane registration of a frame sequence by phase correlation.

Frames are float tensors ``[N, H, W]`` (one gray channel, any positive intensity scale).
A shift ``s = (dy, dx)`` in pixels means ``frame(y, x) ≈ reference(y - dy, x - dx)``: the frame's
content sits ``s`` further down / right than the reference's; :func:`apply_shifts` with ``s``
moves it back.

Why it survives acquisition nuisance: frames are compared as ``log(intensity)`` so a gain, a
gamma and a smooth multiplicative bias field become an additive smooth term and a scale; the
phase of the normalised cross-power spectrum ignores scale, and the frequency weighting
(:func:`band_weights`) drops the lowest frequencies (where the bias lives) and the highest
(noise, speckle). Integer shifts come from the correlation peak, the sub-pixel part from a
weighted least-squares fit of the residual phase slope.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

LOG_FLOOR = 0.05  # fraction of each frame's mean added before the log: tames dark background noise
MAX_SHIFT = 1 / 6  # largest shift searched, fraction of the shorter side (pose jitter is small)


def log_frames(frames: torch.Tensor) -> torch.Tensor:
    """Float [N, H, W] >= 0 -> float32 ``log(frame + LOG_FLOOR * mean(frame))`` [N, H, W]."""
    frames = frames.float().clamp_min(0.0)
    floor = LOG_FLOOR * frames.mean(dim=(1, 2), keepdim=True).clamp_min(1e-6)
    return torch.log(frames + floor)


def hann_window(height: int, width: int, dtype=torch.float32) -> torch.Tensor:
    """Separable 2-D Hann window [H, W] (periodic=False), so frame borders do not correlate."""
    wy = torch.hann_window(height, periodic=False, dtype=dtype)
    wx = torch.hann_window(width, periodic=False, dtype=dtype)
    return wy[:, None] * wx[None, :]


def frequency_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial frequencies (cycles per pixel) of ``fft2`` bins: fy [H, 1], fx [1, W]."""
    fy = torch.fft.fftfreq(height, dtype=torch.float32)[:, None]
    fx = torch.fft.fftfreq(width, dtype=torch.float32)[None, :]
    return fy, fx


def band_weights(height: int, width: int, low: float = 0.02, high: float = 0.12) -> torch.Tensor:
    """Band-pass weights [H, W] in (0, 1): ``(1 - exp(-f²/2low²)) * exp(-f²/2high²)``, f in cycles/px."""
    fy, fx = frequency_grid(height, width)
    f2 = fy**2 + fx**2
    return (1.0 - torch.exp(-f2 / (2 * low**2))) * torch.exp(-f2 / (2 * high**2))


def _spectra(log_images: torch.Tensor) -> torch.Tensor:
    """Windowed, mean-free log images [N, H, W] -> complex spectra [N, H, W]."""
    centred = log_images - log_images.mean(dim=(-2, -1), keepdim=True)
    return torch.fft.fft2(centred * hann_window(*log_images.shape[-2:]))


def _integer_peaks(cross: torch.Tensor, weights: torch.Tensor, max_shift: float) -> torch.Tensor:
    """Integer shifts at the peak of the weighted phase correlation.

    Integer (dy, dx) [N, 2] of the peak of the weighted phase correlation within
    ``max_shift`` px (noise elsewhere on the surface cannot win).
    """
    height, width = cross.shape[-2:]
    dy = torch.fft.fftfreq(height) * height  # wrapped offsets 0, 1, ..., -1
    dx = torch.fft.fftfreq(width) * width
    inside = (dy[:, None].abs() <= max_shift) & (dx[None, :].abs() <= max_shift)
    surface = torch.fft.ifft2(cross * weights).real
    flat = surface.masked_fill(~inside, -torch.inf).flatten(1).argmax(dim=1)
    return torch.stack([dy[flat // width], dx[flat % width]], dim=1).float()


def _phase_slope(cross: torch.Tensor, weights: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """Sub-pixel correction [N, 2]: weighted least-squares slope of the residual phase.

    After removing the ``coarse`` shift the phase of ``cross`` is ``-2π (fy dy + fx dx)`` with
    |d| <= ~0.5 px, which does not wrap at the frequencies the weights keep.
    """
    fy, fx = frequency_grid(*cross.shape[-2:])
    fy, fx = fy.expand_as(weights), fx.expand_as(weights)
    undo = torch.exp(2j * math.pi * (fy * coarse[:, 0, None, None] + fx * coarse[:, 1, None, None]))
    phase = torch.angle(cross * undo)  # [N, H, W]
    w = weights * cross.abs()
    ay, ax = -2 * math.pi * fy, -2 * math.pi * fx  # phase = ay * dy + ax * dx

    def weighted_sum(term: torch.Tensor) -> torch.Tensor:
        return (w * term).sum(dim=(1, 2))

    normal = torch.stack([
        torch.stack([weighted_sum(ay * ay), weighted_sum(ay * ax)], dim=1),
        torch.stack([weighted_sum(ay * ax), weighted_sum(ax * ax)], dim=1),
    ], dim=1)  # fmt: skip
    rhs = torch.stack([weighted_sum(ay * phase), weighted_sum(ax * phase)], dim=1)
    normal = normal + 1e-12 * torch.eye(2, dtype=normal.dtype)
    return torch.linalg.solve(normal, rhs[..., None])[..., 0]


def fourier_shift(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Move each image back by its shift, periodically (content wraps): [N, H, W] -> [N, H, W]."""
    fy, fx = frequency_grid(*images.shape[-2:])
    phase = fy * shifts[:, 0, None, None] + fx * shifts[:, 1, None, None]
    return torch.fft.ifft2(torch.fft.fft2(images) * torch.exp(2j * math.pi * phase)).real


def estimate_shifts(
    log_images: torch.Tensor,
    log_reference: torch.Tensor,
    weights: torch.Tensor | None = None,
    refinements: int = 2,
    max_shift: float | None = None,
) -> torch.Tensor:
    """Translation of each frame relative to the reference, float64 [N, 2] (dy, dx) pixels.

    Each refinement moves the frames back by the estimate so far and adds the residual shift
    measured then: the fixed window biases a single estimate by up to ~0.2 px, this removes it.

    Args:
        log_images: float [N, H, W], frames after :func:`log_frames`.
        log_reference: float [H, W], the reference after :func:`log_frames`.
        weights: frequency weights [H, W]; default :func:`band_weights`.
        refinements: extra residual estimates after the first one.
        max_shift: largest shift searched, px; default ``MAX_SHIFT`` x the shorter side.
    """
    height, width = log_images.shape[-2:]
    max_shift = MAX_SHIFT * min(height, width) if max_shift is None else max_shift
    weights = band_weights(height, width) if weights is None else weights
    # float32 / complex64: 0.01 px precision does not need more, and it halves the time
    log_images = log_images.float()
    reference = _spectra(log_reference.float()[None])[0].conj()
    shifts = torch.zeros(log_images.shape[0], 2, dtype=torch.float32)
    for round_ in range(1 + max(0, refinements)):
        moved = log_images if round_ == 0 else fourier_shift(log_images, shifts)
        product = _spectra(moved) * reference
        cross = product / product.abs().clamp_min(1e-12)
        coarse = _integer_peaks(cross, weights, max_shift if round_ == 0 else 1.0)
        shifts = shifts + coarse + _phase_slope(product, weights, coarse)
    return shifts.double()


def apply_shifts(frames: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Move each frame back by its shift: float [N, H, W], shifts [N, 2] (dy, dx) -> [N, H, W].

    Bilinear resampling; pixels that come from outside the frame repeat the border (crop a
    margin of ``max |shift|`` before using them).
    """
    n, height, width = frames.shape
    theta = torch.zeros(n, 2, 3, dtype=frames.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = 2.0 * shifts[:, 1].to(frames.dtype) / width  # align_corners=False units
    theta[:, 1, 2] = 2.0 * shifts[:, 0].to(frames.dtype) / height
    grid = F.affine_grid(theta, [n, 1, height, width], align_corners=False)
    moved = F.grid_sample(frames[:, None], grid, mode="bilinear", padding_mode="border",
                          align_corners=False)  # fmt: skip
    return moved[:, 0]


def register_frames(frames: torch.Tensor, passes: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Register every frame to the temporal median frame by translation.

    The first pass registers to the median of the raw frames; each further pass to the median of
    the frames registered by the pass before (sharper, so more precise).

    Args:
        frames: float [N, H, W], non-negative intensities.
        passes: number of estimate / re-reference rounds (>= 1).

    Returns:
        (registered float [N, H, W] in the input's dtype, shifts float64 [N, 2] (dy, dx) px).
    """
    logs = log_frames(frames)
    reference = logs.median(dim=0).values
    shifts = torch.zeros(frames.shape[0], 2, dtype=torch.float64)
    for _ in range(max(1, passes)):
        shifts = estimate_shifts(logs, reference)
        reference = apply_shifts(logs, shifts).median(dim=0).values
    return apply_shifts(frames, shifts), shifts


def register_images(images: torch.Tensor, passes: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Register a decoded sequence by translation.

    A decoded sequence registered by translation: uint8 [N, C, H, W] -> (uint8 [N, C, H, W],
    shifts float64 [N, 2]).

    The shifts are estimated on the channel mean (:func:`register_frames`) and applied to every
    channel; borders repeat the edge pixels. Used by ``data.register=true`` so that per-frame
    in-plane jitter is removed before augmentation and the network see the frames.
    """
    gray = images.double().mean(dim=1)
    _, shifts = register_frames(gray, passes)
    n, c, h, w = images.shape
    moved = apply_shifts(images.double().reshape(n * c, h, w), shifts.repeat_interleave(c, 0))
    return moved.round().clamp(0, 255).to(torch.uint8).reshape(n, c, h, w), shifts


def register_frameset(frames):
    """``frames`` registered onto the sequence's temporal median frame.

    ``frames`` with every image translated onto the sequence's temporal median frame
    (``data.register=true``): per-frame in-plane jitter removed before augmentation and the
    network; label-free, from the images alone (:func:`register_images`).
    """
    images, shifts = register_images(frames.images)
    note = (
        f"data.register: frames translated onto their temporal median (|shift| mean"
        f" {float(shifts.abs().mean()):.2f} px, max {float(shifts.abs().max()):.2f} px)"
    )
    return dataclasses.replace(frames, images=images, notes=[*frames.notes, note])
