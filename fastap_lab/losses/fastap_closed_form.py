"""FastAP's value from histograms, and the triangular kernel's gradient in closed form.

:func:`loss_sum_from_histograms` is the loss of every path of
:func:`fastap_lab.losses.fastap.fastap_loss`. :func:`triangular_block` is its CPU path for the
paper's kernel. Autograd
through the histogram scatter records a dozen [rows, N] intermediates and replays each backward;
here the gradient is written out, so a block is one matrix product for the distances, two
scatters for the histograms, one gather for the gradient and two matrix products back to the
embeddings. Same formula, same arithmetic per term as
:func:`fastap_lab.losses.histograms.split_histograms` (float64 agreement with
pytorch-metric-learning and the naive reference is tested on both paths).

Derivation, per anchor i with N⁺ positives, positive histogram h⁺, all-item histogram h,
H⁺ = cumsum h⁺, H = cumsum h and S_l = H_l where H_l holds mass (else 1):
loss_i = 1 − (1/N⁺) Σ_l h⁺_l H⁺_l / S_l, so
∂loss/∂h⁺_m = −(1/N⁺) (H⁺_m / S_m + Σ_{l ≥ m} h⁺_l / S_l) and
∂loss/∂h_m = (1/N⁺) Σ_{l ≥ m} [H_l has mass] h⁺_l H⁺_l / S_l².
A distance d with interval index l and fraction f = d·bins/4 − l adds 1 − f to centre l and f to
centre l + 1 of its histograms (a positive to both h⁺ and h), so ∂loss/∂f = g_{l+1} − g_l with
g the gradient of the histogram slot it falls in, and ∂f/∂cos = −2·bins/4 inside the clamp.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from fastap_lab.losses.histograms import MAX_SQUARED_DISTANCE


def triangular_block(
    unit: Tensor, anchors: Tensor, positives: Tensor, bins: int, with_grad: bool
) -> tuple[Tensor, Tensor | None, Tensor]:
    """Σ (1 − FastAP) over a block of anchors, its gradient w.r.t. the block's cosines.

    Args:
        unit: [N, D] L2-normalised rows.
        anchors: [A] long row indices of the block's anchors.
        positives: [A, N] bool, the items relevant to each anchor; the anchor's own column
            (``positives[r, anchors[r]]``) is ignored whatever it holds.
        bins: number of intervals over [0, 4].
        with_grad: compute the gradient (else None).

    Returns:
        (scalar sum over the anchors with a positive, [A, N] gradient of that sum w.r.t. the
        cosines unit[anchors] · unitᵀ or None, number of anchors with a positive). Memory: a
        few [A, N] tensors; cost O(A·N·D).
    """
    anchor_unit = unit[anchors]
    scale = bins / MAX_SQUARED_DISTANCE
    # position = (2 − 2·cos) · bins / 4 in one product: the centres sit at the integers.
    position = torch.addmm(unit.new_tensor(2 * scale), anchor_unit, unit.T, alpha=-2 * scale)
    rows = torch.arange(len(anchors), device=unit.device)
    # An anchor's own entry (cos ≈ 1, often a rounding past it) is discarded below; zeroing it
    # keeps it from triggering the clamp check on every block.
    position[rows, anchors] = 0
    low, high = position.aminmax()
    # Rounding can push cos past ±1; clamp passes no gradient there (rare: checked first).
    clamped = bool(low < 0) or bool(high > bins)
    inside = (position >= 0) & (position <= bins) if clamped and with_grad else None
    if clamped:
        position.clamp_(0, bins)
    # d = 4 stays in the last interval (fraction 1) instead of indexing centre bins + 1.
    lower = position.floor().clamp_(max=bins - 1)
    fraction = position - lower
    block = bins + 1
    index = lower.long().add_(positives, alpha=block)
    index[rows, anchors] = 2 * block  # the anchor itself goes to a discarded third block
    histograms = _slot_histograms(index, fraction, 3 * block)
    negative_hist, positive_hist = histograms[:, :block], histograms[:, block : 2 * block]
    num_positives = positives.sum(dim=1) - positives[rows, anchors].long()
    loss_sum, positive_grad, all_grad = loss_and_histogram_gradients(
        positive_hist, negative_hist + positive_hist, num_positives, with_grad
    )
    num_counted = (num_positives > 0).sum()
    if not with_grad:
        return loss_sum, None, num_counted
    slot_grad = torch.cat([all_grad, all_grad + positive_grad, torch.zeros_like(all_grad)], dim=1)
    # ∂loss/∂cos = ∂loss/∂fraction · ∂fraction/∂cos, with ∂loss/∂fraction = g[index + 1] −
    # g[index] (the last column is never an index) and ∂fraction/∂cos = −2·bins/4.
    step = F.pad(slot_grad[:, 1:] - slot_grad[:, :-1], (0, 1)).mul_(-2 * scale)
    cosine_grad = step.gather(1, index)
    if inside is not None:
        cosine_grad.masked_fill_(~inside, 0)
    return loss_sum, cosine_grad, num_counted


def _slot_histograms(index: Tensor, fraction: Tensor, width: int) -> Tensor:
    """[A, width] triangular histograms: h_l = count_l − F_l + F_{l−1} (see histograms.py)."""
    empty = fraction.new_zeros(index.shape[0], width)
    counts = empty.scatter_add(1, index, fraction.new_ones(()).expand_as(index))
    fraction_sums = empty.scatter_add(1, index, fraction)
    return counts - fraction_sums + F.pad(fraction_sums[:, :-1], (1, 0))


def loss_sum_from_histograms(
    positive_hist: Tensor, all_hist: Tensor, num_positives: Tensor
) -> Tensor:
    """Σ (1 − FastAP) over rows with ≥ 1 positive, from [A, bins + 1] histograms.

    Differentiable by autograd, and branch-free (no data-dependent Python control flow) so it
    traces under torch.compile.
    """
    return loss_and_histogram_gradients(positive_hist, all_hist, num_positives, False)[0]


def loss_and_histogram_gradients(
    positive_hist: Tensor, all_hist: Tensor, num_positives: Tensor, with_grad: bool
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Σ (1 − FastAP) over rows with a positive, and its gradients w.r.t. h⁺ and h [A, bins + 1].

    The gradients (None unless ``with_grad``) are the closed forms in the module docstring.
    """
    cumulative_positive = positive_hist.cumsum(dim=1)
    cumulative_all = all_hist.cumsum(dim=1)
    # H_l = 0 forces h⁺_l = H⁺_l = 0; the safe denominator keeps 0/0 (and its gradient) at 0.
    # Gaussian tails leave bins with H_l ~ 1e-40 (denormal in float32): 1 / H_l overflows to inf
    # and the backward pass turns inf · 0 into NaN. Bins below sqrt(tiny) (1e-19 in float32)
    # hold no measurable mass, since their term h⁺ H⁺ / H <= H, so they count as empty.
    has_mass = cumulative_all > math.sqrt(torch.finfo(cumulative_all.dtype).tiny)
    safe_total = torch.where(has_mass, cumulative_all, torch.ones_like(cumulative_all))
    precision_terms = positive_hist * cumulative_positive / safe_total
    has_positive = num_positives > 0
    counts = num_positives.clamp(min=1).to(positive_hist.dtype)
    average_precision = precision_terms.sum(dim=1) / counts
    loss_sum = ((1 - average_precision) * has_positive.to(positive_hist.dtype)).sum()
    if not with_grad:
        return loss_sum, None, None
    row_weight = (has_positive.to(positive_hist.dtype) / counts).unsqueeze(1)
    ratio = positive_hist / safe_total
    positive_grad = -(cumulative_positive / safe_total + _reverse_cumsum(ratio)) * row_weight
    per_total = torch.where(has_mass, precision_terms / safe_total, 0.0)
    all_grad = _reverse_cumsum(per_total) * row_weight
    return loss_sum, positive_grad, all_grad


def _reverse_cumsum(values: Tensor) -> Tensor:
    """Σ_{l ≥ m} values[:, l] for every m."""
    return values.flip(1).cumsum(1).flip(1)
