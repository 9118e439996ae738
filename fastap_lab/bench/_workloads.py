"""Synthetic retrieval workloads for the ranking benchmark.

The users' breathing sequence (binary hold labels, dense relevance) and clustered embeddings
(C classes, sparse for large C).

Not a benchmark itself (the leading underscore keeps it out of ``python -m fastap_lab.bench``).
"""

from __future__ import annotations

import torch

NOISE_SCALE = 3.0  # clustered: per-dimension noise vs unit-variance centres (50 classes: mAP ~0.25)
FRAMES_PER_SECOND = 10.0
HOLD_POSITION, HOLD_TOLERANCE = 0.6, 0.4  # latent in [-1, 1]; label = |latent - hold| <= tol
BREATHING_NOISE = 0.3  # per-dimension noise vs the unit-scale smooth embedding


def workload(classes: int, num_items: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Embeddings and labels of a workload with ``classes`` classes.

    [N, D] float32 embeddings and [N] long labels: the breathing sequence for 2 classes,
    clustered embeddings otherwise.
    """
    if classes == 2:
        return breathing_embeddings(num_items, dim, seed)
    return clustered_embeddings(num_items, dim, classes, seed)


def breathing_embeddings(num_items: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Frames of a breathing sequence: latent chest position over time, embedded smoothly.

    Breaths last 3-6 s (sin of an irregularly advancing phase); every fourth breath holds
    for 5-15 s near ``HOLD_POSITION``. The latent x goes through sin/cos(k·pi·x), k = 1..4, a
    random linear map to ``dim`` and unit noise x ``BREATHING_NOISE``. Label 1 ("hold
    position") when |x - HOLD_POSITION| <= HOLD_TOLERANCE.
    """
    generator = torch.Generator().manual_seed(seed)
    latent = []
    breath = 0
    while len(latent) < num_items:
        frames = int(FRAMES_PER_SECOND * (3 + 3 * torch.rand(1, generator=generator).item()))
        phase = torch.linspace(0, 2 * torch.pi, frames + 1)[:-1]
        latent += torch.sin(phase).tolist()
        if breath % 4 == 3:  # a breath-hold: a plateau with a little drift
            hold = int(FRAMES_PER_SECOND * (5 + 10 * torch.rand(1, generator=generator).item()))
            drift = 0.05 * torch.randn(hold, generator=generator).cumsum(0) / hold**0.5
            latent += (HOLD_POSITION + drift).tolist()
        breath += 1
    position = torch.tensor(latent[:num_items])
    harmonics = torch.arange(1, 5) * torch.pi * position[:, None]
    smooth = torch.cat([harmonics.sin(), harmonics.cos()], dim=1)
    mixing = torch.randn(smooth.shape[1], dim, generator=generator)
    noise = torch.randn(num_items, dim, generator=generator) * BREATHING_NOISE
    labels = ((position - HOLD_POSITION).abs() <= HOLD_TOLERANCE).long()
    return smooth @ mixing + noise, labels


def clustered_embeddings(
    num_items: int, dim: int, classes: int = 50, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """[N, D] float32 embeddings around ``classes`` random centres, and [N] long labels."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (num_items,), generator=generator)
    centres = torch.randn(classes, dim, generator=generator)
    noise = torch.randn(num_items, dim, generator=generator) * NOISE_SCALE
    return centres[labels] + noise, labels
