"""Soft histograms of squared distances on the unit sphere (in [0, 4]): the core of FastAP.

Each distance adds one unit of mass spread over the bins + 1 centres 0, Δ, …, 4 (Δ = 4 / bins)
by a kernel: ``triangular`` (the paper's, one bin wide) or ``gaussian`` (bandwidth ``sigma``,
truncated at ``GAUSSIAN_TRUNCATION_SIGMAS``·σ). Only the centres a kernel reaches are touched, so
no [pairs, bins] tensor is ever made. :func:`fastap_lab.losses.fastap.fastap_loss` builds on
:func:`split_histograms`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_SQUARED_DISTANCE = 4.0  # squared Euclidean distance between unit vectors lies in [0, 4]
# The gaussian window keeps every centre within this many sigmas of the distance: the mass
# dropped beyond it is < exp(-6²/2) ≈ 1.5e-8 relative, far below float32 resolution of a bin.
GAUSSIAN_TRUNCATION_SIGMAS = 6.0


def soft_histograms(
    distances: Tensor,
    mask: Tensor,
    bins: int,
    kernel: str = "triangular",
    sigma: float | None = None,
) -> Tensor:
    """Per-row soft histograms [A, bins + 1] of the masked distances [A, N] (values in [0, 4]).

    Each unmasked distance adds one unit of mass spread over the centres by ``kernel``; masked
    entries add nothing. Differentiable in ``distances``.
    """
    return split_histograms(distances, mask, mask, bins, kernel, sigma).sum(dim=1)


def split_histograms(
    distances: Tensor,
    valid: Tensor,
    positive: Tensor,
    bins: int,
    kernel: str = "triangular",
    sigma: float | None = None,
) -> Tensor:
    """Soft histograms of the negative and positive distances of each anchor.

    [A, 2, bins + 1]: soft histograms of the valid distances [A, N] that are not positive
    (slot 0) and that are (slot 1); ``valid`` and ``positive`` are [A, N] bool.

    Both slots come from one scatter: an entry's centre index is shifted by bins + 1 when it is
    positive and by 2·(bins + 1), into a discarded block, when it is not valid. That halves the
    scatter work of two separate histograms and needs no multiplication by the masks.
    """
    rows, block = distances.shape[0], bins + 1
    slot_of_positive = torch.where(positive, block, 0)
    slot = torch.where(valid, slot_of_positive, 2 * block)
    empty = distances.new_zeros(rows, 3 * block)
    if kernel == "triangular":
        histograms = _triangular_slot_histograms(distances, slot, bins, empty)
    else:
        centre_index, centre_weight = _gaussian_weights(distances, bins, sigma)
        index = (centre_index + slot.unsqueeze(-1)).reshape(rows, -1)
        histograms = empty.scatter_add(1, index, centre_weight.reshape(rows, -1))
    return histograms[:, : 2 * block].view(rows, 2, block)


def _triangular_slot_histograms(distances, slot, bins, empty) -> Tensor:
    """[A, 3·(bins + 1)] triangular-kernel histograms of the entries in each slot block.

    relu(1 − |d − c_l| / Δ) is non-zero only at the centres l and l + 1 that bracket d, where it
    is 1 − frac and frac (frac = d's position inside interval l). So h_l = count_l − F_l + F_{l−1},
    with count_l the (gradient-free) number of distances in interval l and F_l the sum of their
    fracs: one differentiable scatter of N per row.
    """
    position = distances * (bins / MAX_SQUARED_DISTANCE)
    # Clamping keeps d = 4 in the last interval (frac = 1) instead of indexing centre bins + 1.
    lower = position.detach().floor().clamp(0, bins - 1)
    frac = position - lower
    index = lower.long() + slot
    counts = empty.scatter_add(1, index, frac.new_ones(()).expand_as(index))
    frac_sums = empty.scatter_add(1, index, frac)
    # Interval `bins` is never used as a lower index, so the shift moves no mass across blocks.
    shifted_frac_sums = F.pad(frac_sums[:, :-1], (1, 0))
    return counts - frac_sums + shifted_frac_sums


def _gaussian_weights(distances: Tensor, bins: int, sigma: float) -> tuple[Tensor, Tensor]:
    """Indices and normalised gaussian weights [A, N, W] over a window of W centres.

    The window (clipped to [0, bins], so it slides rather than shrinks at the ends) holds every
    centre within GAUSSIAN_TRUNCATION_SIGMAS·σ of d; softmax keeps tiny sigmas from underflowing.
    """
    delta = MAX_SQUARED_DISTANCE / bins
    half_width = math.ceil(GAUSSIAN_TRUNCATION_SIGMAS * sigma / delta) + 1
    width = min(2 * half_width + 1, bins + 1)
    nearest = torch.round(distances.detach() / delta).long()
    start = (nearest - half_width).clamp(0, bins + 1 - width)
    index = start.unsqueeze(-1) + torch.arange(width, device=distances.device)
    offsets = distances.unsqueeze(-1) - index.to(distances.dtype) * delta
    return index, torch.softmax(-(offsets**2) / (2 * sigma**2), dim=-1)
