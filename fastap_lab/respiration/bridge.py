"""A bridge between two sequences of one patient in different contrasts, via their surrogates.

A query image of another contrast (a breath-hold reference acquired with another sequence) cannot
be compared with the gallery's frames pixel by pixel, and learned embeddings did not transfer
(experiments/README.md). What does transfer is the *respiratory position*. Given an unlabelled
sequence in the query's contrast (the *target*), the query is

1. aligned to the target's temporal median frame (scale and rotation searched on a grid, then
   translation by phase correlation: a reference taken at another time is never in exactly the
   same pose) and placed on the target's surrogate at the median value of the target frames
   that look most like it — a same-contrast comparison (:func:`place_image`);
2. carried to the gallery's surrogate by matching the two breathing ranges (:func:`range_map`):
   the surrogates' own scales differ between sequences, and so do the shares of time spent at
   each position (breath-holds), so neither their values nor their quantiles carry over;
3. with the two surrogates oriented alike first: a surrogate's sign is arbitrary, and the
   motion from the low to the high end (block-wise Lucas-Kanade on the mean frames of the two
   ends, blind to the contrast's polarity) must point the same way in both sequences
   (:func:`breathing_motion`, :func:`field_agreement`).

Pure: torch / numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fastap_lab.errors import DataError
from fastap_lab.respiration.normalize import gaussian_blur, normalise_intensity
from fastap_lab.respiration.register import apply_shifts, estimate_shifts, log_frames

SCALES = tuple(np.round(np.arange(0.85, 1.151, 0.025), 3))
ROTATIONS = tuple(np.round(np.arange(-0.08, 0.081, 0.02), 3))  # radians
BINS = 8  # surrogate levels whose mean frames show the motion
NEIGHBOURS = 5  # most similar frames whose median surrogate value places an image


def lucas_kanade(first: torch.Tensor, second: torch.Tensor, block: int = 8):
    """Block-wise motion from ``first`` to ``second`` (float [H, W], one sequence's contrast).

    Per block, u solves ``sum(g g^T) u = -sum(g (second - first))`` with g the gradient of the
    mean image (both blurred by 1 px first). Inverting the contrast flips both the gradient and
    the difference, so u does not depend on the contrast's polarity. Valid for motions of about
    a pixel or two (the linearisation).

    Returns:
        (flow float64 [2, H / block, W / block] (dy, dx) px, confidence [H / block, W / block]: the
        determinant of the block's structure tensor, 0 where the block has no texture).
    """
    first = gaussian_blur(first[None], 1.0)[0].double()
    second = gaussian_blur(second[None], 1.0)[0].double()
    grad_y, grad_x = torch.gradient((first + second) / 2)
    change = second - first

    def pool(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x[None, None], block)[0, 0]

    xx, xy, yy = pool(grad_x * grad_x), pool(grad_x * grad_y), pool(grad_y * grad_y)
    bx, by = -pool(grad_x * change), -pool(grad_y * change)
    det = xx * yy - xy * xy
    usable = det > 1e-6 * float(det.max().clamp_min(1e-30))
    safe = det.clamp_min(1e-30)
    flow_x = torch.where(usable, (yy * bx - xy * by) / safe, 0.0)
    flow_y = torch.where(usable, (xx * by - xy * bx) / safe, 0.0)
    return torch.stack([flow_y, flow_x]), torch.where(usable, det, 0.0)


def breathing_motion(frames: torch.Tensor, surrogate: np.ndarray, levels: int = BINS):
    """Estimate the breathing motion of a sequence along its surrogate.

    The motion from the surrogate's low end to its high end: Lucas-Kanade between the mean
    frames of its lowest and highest populated levels, so that noise and per-frame nuisance
    average out. The range between the surrogate's 1st and 99th percentiles is cut into
    ``levels`` equal intervals (frames outside go to the end levels); a level needs 2 frames.

    Args:
        frames: float [N, H, W] registered frames.
        surrogate: float [N] their surrogate.
        levels: intervals the breathing range is cut into.

    Returns:
        (flow float64 [2, H / 8, W / 8], confidence [H / 8, W / 8]) as :func:`lucas_kanade`.
    """
    surrogate = np.asarray(surrogate, dtype=np.float64)
    low, high = np.quantile(surrogate, [0.01, 0.99])
    level = np.clip(
        np.searchsorted(np.linspace(low, high, levels + 1), surrogate) - 1, 0, levels - 1
    )
    populated = [k for k in range(levels) if (level == k).sum() >= 2]
    if len(populated) < 2:
        raise DataError("the surrogate has fewer than 2 populated levels: no breathing to bridge")
    low_end, high_end = (
        frames[torch.from_numpy(level == k)].mean(0) for k in (populated[0], populated[-1])
    )
    return lucas_kanade(low_end, high_end)


def field_agreement(first, second) -> float:
    """How well two breathing motions agree, as a weighted cosine.

    Confidence-weighted cosine in [-1, 1] between two :func:`breathing_motion` results of
    frames of the same size: near +1 the two surrogates rise with the same motion, near -1 one
    is upside down, near 0 the motions do not correspond (another pose, slice or field of view).
    """
    (flow_a, conf_a), (flow_b, conf_b) = first, second
    weight = (conf_a * conf_b).sqrt()
    dot = ((flow_a * flow_b).sum(0) * weight).sum()
    norm = (flow_a.norm(dim=0) * flow_b.norm(dim=0) * weight).sum().clamp_min(1e-30)
    return float(dot / norm)


def range_map(values: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Map surrogate values from one sequence's scale onto another's.

    Carry values on ``source``'s scale to ``target``'s, matching the breathing ranges: the
    1st..99th percentiles of ``source`` [M] map linearly onto those of ``target`` [N].

    Both sequences are assumed to span the same breathing range (one patient, one session) and
    the surrogates to be close to linear in the motion (|r| 0.97-0.99 on every phantom). Matching
    quantiles instead would also assume the same share of time at every position, which
    breath-holds break; experiments/README.md compares the two.
    """
    low_s, high_s = np.quantile(source, [0.01, 0.99])
    low_t, high_t = np.quantile(target, [0.01, 0.99])
    return low_t + (np.asarray(values, dtype=np.float64) - low_s) / max(high_s - low_s, 1e-12) * (
        high_t - low_t
    )


def _warps(image: torch.Tensor, grid: list[tuple[float, float]]) -> torch.Tensor:
    """Warp an image by every (scale, rotation) of ``grid``.

    float [H, W] zoomed by each ``scale`` and rotated by each ``rotation`` rad about its
    centre: float32 [G, H, W], one per (scale, rotation) of ``grid``.
    """
    theta = torch.tensor(
        [[[math.cos(r) / z, -math.sin(r) / z, 0.0], [math.sin(r) / z, math.cos(r) / z, 0.0]]
         for z, r in grid], dtype=torch.float32,
    )  # fmt: skip
    sampling = F.affine_grid(theta, [len(grid), 1, *image.shape], align_corners=False)
    source = image.float().expand(len(grid), 1, *image.shape)
    return F.grid_sample(source, sampling, padding_mode="border", align_corners=False)[:, 0]


@dataclass
class Alignment:
    """The result of :func:`align_image`.

    How an image was aligned to a reference: zoom, rotation (rad), shift (dy, dx) px and the
    normalised correlation reached.
    """

    scale: float
    rotation: float
    shift: tuple[float, float]
    correlation: float


def align_image(image: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, Alignment]:
    """Align float [H, W] ``image`` to ``reference`` [H, W] of the same contrast.

    Every (scale, rotation) of the grid (:data:`SCALES` x :data:`ROTATIONS`), then a grid a
    quarter as wide around the best; translation by phase correlation for each; the highest
    normalised correlation (borders left out) wins.

    Returns:
        (aligned float [H, W], :class:`Alignment`).
    """
    coarse = [(float(z), float(r)) for z in SCALES for r in ROTATIONS]
    moved, found = _best_warp(image, reference, coarse)
    z_step, r_step = (SCALES[1] - SCALES[0]) / 4, (ROTATIONS[1] - ROTATIONS[0]) / 4
    fine = [(found.scale + i * z_step, found.rotation + j * r_step)
            for i in range(-2, 3) for j in range(-2, 3)]  # fmt: skip
    return _best_warp(image, reference, fine)


def _best_warp(image: torch.Tensor, reference: torch.Tensor, grid: list[tuple[float, float]]):
    warped = _warps(image, grid)
    shifts = estimate_shifts(log_frames(warped), log_frames(reference[None])[0])
    moved = apply_shifts(warped, shifts)
    margin = max(1, image.shape[-1] // 10)
    inner = moved[:, margin:-margin, margin:-margin].flatten(1).double()
    ref = reference[margin:-margin, margin:-margin].flatten().double()
    inner, ref = inner - inner.mean(1, keepdim=True), ref - ref.mean()
    correlation = (inner @ ref) / (inner.norm(dim=1) * ref.norm()).clamp_min(1e-12)
    best = int(correlation.argmax())
    scale, rotation = grid[best]
    found = Alignment(scale, rotation, tuple(shifts[best].tolist()), float(correlation[best]))
    return moved[best].to(image.dtype), found


def similarity_features(frames: torch.Tensor) -> torch.Tensor:
    """Features for comparing frames of one contrast by their anatomy.

    float [N, H, W] -> unit float64 [N, P]: gain / bias invariant, lightly smoothed, so that
    frames of one contrast compare by anatomy rather than by acquisition drift.
    """
    side = min(frames.shape[-2:])
    x = normalise_intensity(frames.double(), 0.125 * side, "zscore", 1.0)
    margin = max(1, side // 10)
    return F.normalize(x[:, margin:-margin, margin:-margin].flatten(1), dim=1)


def place_image(
    image: torch.Tensor,
    median: torch.Tensor,
    features: torch.Tensor,
    surrogate: np.ndarray,
    neighbours: int = NEIGHBOURS,
) -> tuple[float, Alignment]:
    """Place an image on the surrogate of a sequence of the same contrast.

    The surrogate value of ``image`` float [H, W] on a sequence of the same contrast, given the
    sequence's registered median frame ``median`` [H, W], its frames' :func:`similarity_features`
    ``features`` [N, P] (computed once per sequence: they are per frame) and ``surrogate`` [N]:
    aligned to the median frame, then the median surrogate value of its ``neighbours`` most
    similar frames (in the same contrast a few nearest frames are precise; a kernel average over
    the whole profile, as an image of another contrast needs
    (:func:`fastap_lab.gating.scores.place_on_surrogate`), blurs it).
    """
    aligned, alignment = align_image(image, median)
    similarity = (features @ similarity_features(aligned[None])[0]).numpy()
    nearest = np.argsort(similarity, kind="stable")[-min(neighbours, len(similarity)) :]
    return float(np.median(np.asarray(surrogate, dtype=np.float64)[nearest])), alignment
