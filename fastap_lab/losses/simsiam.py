"""SimSiam objective (Chen & He, CVPR 2021) and its collapse monitor."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean of ``-cos(p_i, stopgrad(z_i))`` over rows. ``p``, ``z``: [B, D] -> scalar."""
    return -F.cosine_similarity(p, z.detach(), dim=1).mean()


def simsiam_loss(
    p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor
) -> torch.Tensor:
    """Symmetric SimSiam loss with stop-gradient on the projections.

    Args:
        p1: predictor output of view 1, [B, D].
        p2: predictor output of view 2, [B, D].
        z1: projector output of view 1, [B, D]; gradients do not flow into it.
        z2: projector output of view 2, [B, D]; gradients do not flow into it.

    Returns:
        scalar in [-1, 1]; -1 when each prediction points exactly at the other view's projection.
    """
    return 0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))


def normalized_std(z: torch.Tensor) -> torch.Tensor:
    """Collapse monitor: per-dimension std of the L2-normalised rows, averaged, times sqrt(D).

    ``z``: [B, D] -> scalar. About 1 for embeddings spread over the sphere; tends to 0 when the
    representation collapses to a point (the failure mode SimSiam's stop-gradient prevents).
    """
    unit = F.normalize(z.detach().float(), dim=1)
    return unit.std(dim=0).mean() * math.sqrt(z.shape[1])
