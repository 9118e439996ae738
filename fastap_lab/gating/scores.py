"""Per-frame scores against a reference: how close each frame is to it (higher = closer).

Three ways, by what the user has:

- ``cosine_scores``: embeddings of the frames and of the reference (a checkpoint, or pixels);
- ``surrogate_closeness``: the respiratory surrogate of the sequence (:mod:`fastap_lab.respiration`)
  and the reference's value on it — a frame of the sequence has its own value; an outside image
  is placed by :func:`place_on_surrogate`;
- ``mind_descriptors``: intensity-invariant self-similarity descriptors (MIND, Heinrich et al.,
  MedIA 2012) for a reference of another contrast.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MIND_OFFSETS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1))


def cosine_scores(reference: torch.Tensor, embeddings: torch.Tensor) -> np.ndarray:
    """Cosine similarity of each embedding with the reference's.

    ``embeddings`` float [N, D] and ``reference`` [D] -> float64 [N] in [-1, 1].
    """
    frames = F.normalize(embeddings.double(), dim=1)
    return (frames @ F.normalize(reference.double(), dim=0)).numpy()


def breathing_span(surrogate: np.ndarray) -> float:
    """The breathing range of a surrogate: its 1st to 99th percentile (robust to outliers)."""
    low, high = np.quantile(surrogate, [0.01, 0.99])
    return float(high - low) if high > low else 1.0


def surrogate_closeness(surrogate: np.ndarray, reference_value: float) -> np.ndarray:
    """Closeness of each frame to the reference's respiratory position, in [0, 1].

    ``1 - |s - s_ref| / span`` per frame (float64 [N]): 1 at the reference's respiratory
    position, 0 one whole breathing range away. A threshold of 0.9 therefore means "within 10 %
    of the breathing range".
    """
    return 1.0 - np.abs(surrogate - reference_value) / breathing_span(surrogate)


def place_on_surrogate(
    surrogate: np.ndarray, similarity: np.ndarray, bandwidth: float = 0.05, grid: int = 101
) -> float:
    """The surrogate value where frames look most like the reference.

    One frame's similarity is noisy (pose, zoom, contrast); the mean similarity of all frames at
    a respiratory position is not. The similarity is averaged along the surrogate with a
    Gaussian kernel (``bandwidth`` x the breathing span) on ``grid`` positions between the 1st
    and 99th percentiles; the position of the highest average is returned.

    Args:
        surrogate: float [N] respiratory surrogate of the sequence.
        similarity: float [N] similarity of each frame to the reference image.
        bandwidth: the Gaussian kernel's width, as a share of the breathing span.
        grid: number of surrogate positions the average is evaluated at.
    """
    low, high = np.quantile(surrogate, [0.01, 0.99])
    positions = np.linspace(low, high, grid)
    width = bandwidth * breathing_span(surrogate)
    weights = np.exp(-0.5 * ((surrogate[None, :] - positions[:, None]) / width) ** 2)
    profile = (weights @ similarity) / weights.sum(1).clip(min=1e-12)
    return float(positions[int(np.argmax(profile))])


def mind_descriptors(images: torch.Tensor, size: int = 32, radius: int = 1) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32 [N, 8 * size * size] MIND-like descriptors.

    Per pixel: ``exp(-D_k / V)`` for the 3x3 patch distances ``D_k`` to 8 shifted copies
    (``radius`` px at ``size`` px), ``V`` their mean. Only local structure counts, not which
    tissue is bright, so two contrasts of one anatomy get similar descriptors.
    """
    x = F.interpolate(images.float().mean(1, keepdim=True) / 255.0, size=(size, size), mode="area")
    distances = torch.cat(
        [
            F.avg_pool2d((x - torch.roll(x, (dy * radius, dx * radius), (2, 3))) ** 2, 3, 1, 1)
            for dy, dx in MIND_OFFSETS
        ],
        dim=1,
    )
    variance = distances.mean(1, keepdim=True).clamp_min(1e-4)
    return torch.exp(-distances / variance).flatten(1)
