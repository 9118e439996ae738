"""FastAP: the histogram-binned average-precision loss, exact, in O(N²) time and memory.

Reference: F. Cakir, K. He, X. Xia, B. Kulis, S. Sclaroff, "Deep Metric Learning to Rank",
CVPR 2019 (official code: github.com/kunhe/FastAP-metric-learning). Values and gradients equal
``pytorch_metric_learning.losses.FastAPLoss(num_bins=bins)``, which materialises an
N×N×(bins+1) tensor; here each distance only touches the centres its kernel reaches.

Which pairs are positives is the caller's: :mod:`fastap_lab.losses.positives` builds the masks.
The soft histograms of distances are :mod:`fastap_lab.losses.histograms`; the loss from them,
and the triangular kernel's gradient in closed form (the CPU path), are
:mod:`fastap_lab.losses.fastap_closed_form`.
"""

from __future__ import annotations

import math
import numbers
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from fastap_lab.errors import ConfigError
from fastap_lab.losses.fastap_closed_form import loss_sum_from_histograms, triangular_block
from fastap_lab.losses.histograms import MAX_SQUARED_DISTANCE, split_histograms
from fastap_lab.threads import block_workers, map_blocks, one_torch_thread

KERNELS = ("triangular", "gaussian")
# On the CPU anchors are processed in blocks of about this many [anchor, item] pairs: a
# block's ~15 [rows, N] temporaries stay in cache, and blocks spread over threads without
# per-op barriers (see fastap_lab.threads).
CPU_BLOCK_ENTRIES = 1 << 17


def fastap_loss(
    embeddings: Tensor,
    positives: Tensor,
    *,
    bins: int = 10,
    kernel: str = "triangular",
    sigma: float | None = None,
    anchors: Tensor | None = None,
) -> Tensor:
    """1 − mean FastAP over the anchors that have at least one positive.

    Args:
        embeddings: [N, D] float; rows are L2-normalised here.
        positives: [N, N] bool; ``positives[i, j]`` says j is relevant to anchor i. The diagonal
            is ignored whatever it holds.
        bins: number of distance intervals over [0, 4]; the ``bins + 1`` centres are
            ``linspace(0, 4, bins + 1)`` and Δ = 4 / bins.
        kernel: ``"triangular"`` (the paper: weight relu(1 − |d − c_l| / Δ)) or ``"gaussian"``
            (weights ∝ exp(−(d − c_l)² / 2σ²), normalised to 1 over the centres within
            ``histograms.GAUSSIAN_TRUNCATION_SIGMAS``·σ).
        sigma: gaussian bandwidth in squared-distance units (e.g. 0.05 with bins=100); must be
            None for the triangular kernel.
        anchors: optional [A] long indices of the rows that rank the whole batch (default: all
            N). Under DDP the caller gathers embeddings with a gradient-preserving all-gather,
            builds the [N, N] mask of the global batch, and passes its local rows here; this
            function itself never communicates.

    Returns:
        Scalar tensor. With d = 2 − 2·cos (clamped to [0, 4]), per anchor i the soft histograms
        h⁺ (positives) and h (all others), H⁺ = cumsum h⁺, H = cumsum h, and
        FastAP_i = (1 / N⁺_i) Σ_l h⁺_l H⁺_l / H_l (0/0 terms are 0). If no anchor has a positive
        the result is 0, still connected to ``embeddings`` in the autograd graph.

    Cost: O(A·N·D) for the distances plus O(A·N) (triangular: two centres per distance) or
    O(A·N·W) (gaussian: W centres in the truncation window) for the histograms; never
    A·N·(bins + 1).
    """
    _check_loss_arguments(embeddings, positives, bins, kernel, sigma, anchors)
    histogram_args = (bins, kernel, sigma)
    if embeddings.device.type == "cpu" and not torch.compiler.is_compiling():
        return _blockwise_loss(embeddings, positives, anchors, histogram_args)
    anchors, valid, positive = _anchor_masks(positives, anchors, embeddings.shape[0])
    unit = F.normalize(embeddings, p=2, dim=1)
    num_counted = positive.any(dim=1).sum().clamp(min=1)
    return _anchor_loss_sum(unit, anchors, valid, positive, histogram_args) / num_counted


def _anchor_masks(positives: Tensor, anchors: Tensor | None, num_items: int):
    """The anchor rows and the valid and positive masks of each.

    (anchors [A], valid [A, N], positive [A, N]): the anchor rows (default all N), which
    items each ranks (all but itself) and which of those are its positives.
    """
    columns = torch.arange(num_items, device=positives.device)
    if anchors is None:
        anchors = columns
    else:
        positives = positives[anchors]
    not_self = columns.unsqueeze(0) != anchors.unsqueeze(1)
    return anchors, not_self, positives & not_self


def _anchor_loss_sum(unit, anchors, valid, positive, histogram_args) -> Tensor:
    """Sum of (1 - FastAP) over the anchors that have a positive.

    Σ (1 − FastAP_i) over the rows ``anchors`` [A] that have a positive: unit rows [N, D],
    ``valid`` / ``positive`` [A, N] bool (the anchor itself is not valid).
    """
    distances = _squared_distances_on_sphere(unit[anchors], unit)
    split = split_histograms(distances, valid, positive, *histogram_args)
    return loss_sum_from_histograms(split[:, 1], split.sum(dim=1), positive.sum(dim=1))


def _blockwise_loss(embeddings, positives, anchors, histogram_args) -> Tensor:
    """The loss on the CPU, over blocks of anchors on worker threads.

    Cache-sized blocks of anchors run on the CPU's threads
    (:func:`~fastap_lab.threads.map_blocks`): the triangular kernel's value and gradient in
    closed form (:func:`~fastap_lab.losses.fastap_closed_form.triangular_block`), the gaussian
    one through :func:`_anchor_loss_sum` and autograd in each worker. The gradient joins the
    caller's graph via :class:`_PrecomputedGradient`.

    The same formula as one autograd call; the triangular path's values and gradients differ
    from it by rounding only (tests: 1e-14 in float64, and equal to pml). When other jobs fill
    the cores, all of it, masks and normalisation included, runs on one torch thread: under
    oversubscription each two-thread op waits out a scheduler time slice.
    """
    all_anchors = anchors is None
    num_items = embeddings.shape[0]
    num_anchors = num_items if anchors is None else len(anchors)
    rows_per_block = max(1, CPU_BLOCK_ENTRIES // max(1, num_items))
    blocks = [slice(s, s + rows_per_block) for s in range(0, num_anchors, rows_per_block)]
    needs_grad = torch.is_grad_enabled() and embeddings.requires_grad
    with one_torch_thread() if block_workers(len(blocks)) <= 1 else nullcontext():
        leaf = embeddings.detach().requires_grad_(needs_grad)
        with torch.set_grad_enabled(needs_grad):
            unit = F.normalize(leaf, p=2, dim=1)
        if histogram_args[1] == "triangular":
            anchors = torch.arange(num_items, device=positives.device) if all_anchors else anchors
            rows = positives if all_anchors else positives[anchors]
            args = (unit.detach(), anchors, rows, blocks, histogram_args[0], needs_grad)
            loss_sum, unit_gradient, num_counted = _triangular_blocks(*args, all_anchors)
        else:
            masks = _anchor_masks(positives, anchors, num_items)
            num_counted = masks[2].any(dim=1).sum().clamp(min=1)
            args = (unit.detach(), masks, blocks, histogram_args, needs_grad)
            loss_sum, unit_gradient = _autograd_blocks(*args)
        loss = loss_sum / num_counted
        if not needs_grad:
            return loss
        (gradient,) = torch.autograd.grad(unit, leaf, unit_gradient / num_counted)
    return _PrecomputedGradient.apply(embeddings, loss, gradient)


def _triangular_blocks(unit, anchors, positives, blocks, bins, needs_grad, all_anchors):
    """(Σ loss, its [N, D] gradient or None, anchors with a positive) of the triangular kernel.

    ``positives``: the anchors' rows [A, N] of the mask. Each block returns the gradient
    w.r.t. its cosines [rows, N]; the cosine matrix is U_anchors · Uᵀ, so the gradient w.r.t.
    U is Gᵀ·U_anchors plus G·U added into the anchors' rows — one product (G + Gᵀ)·U when every
    row is an anchor in order (``all_anchors``). Memory: G, [A, N] floats, and for the
    product its transposed copy (N = 8192: 2 × 256 MB in float32).
    """

    def block_sum(rows: slice) -> tuple[Tensor, Tensor | None, Tensor]:
        return triangular_block(unit, anchors[rows], positives[rows], bins, needs_grad)

    results = map_blocks(block_sum, blocks, unit.device)
    loss_sum = torch.stack([total for total, _, _ in results]).sum()
    num_counted = torch.stack([count for _, _, count in results]).sum().clamp(min=1)
    if not needs_grad:
        return loss_sum, None, num_counted
    cosine_grad = torch.cat([block_grad for _, block_grad, _ in results])
    if all_anchors:
        # A transposed copy then an in-place add: 7x faster than `G + G.T`, which reads G
        # column-wise (measured 0.9 vs 3.5-7 ms at N = 1024).
        return loss_sum, cosine_grad.T.contiguous().add_(cosine_grad) @ unit, num_counted
    gradient = cosine_grad.T @ unit[anchors]
    return loss_sum, gradient.index_add_(0, anchors, cosine_grad @ unit), num_counted


def _autograd_blocks(unit, masks, blocks, histogram_args, needs_grad):
    """(Σ loss, its [N, D] gradient or None): :func:`_anchor_loss_sum` and autograd per block."""
    anchors, valid, positive = masks
    unit_leaf = unit.requires_grad_(needs_grad)

    def block_sum(rows: slice) -> tuple[Tensor, Tensor | None]:
        with torch.set_grad_enabled(needs_grad):  # grad mode is per thread
            total = _anchor_loss_sum(
                unit_leaf, anchors[rows], valid[rows], positive[rows], histogram_args
            )
            gradient = torch.autograd.grad(total, unit_leaf)[0] if needs_grad else None
        return total.detach(), gradient

    results = map_blocks(block_sum, blocks, unit.device)
    loss_sum = torch.stack([total for total, _ in results]).sum()
    if not needs_grad:
        return loss_sum, None
    return loss_sum, torch.stack([gradient for _, gradient in results]).sum(0)


class _PrecomputedGradient(torch.autograd.Function):
    """``loss`` as a function of ``embeddings`` whose gradient was already computed."""

    @staticmethod
    def forward(ctx, embeddings: Tensor, loss: Tensor, gradient: Tensor) -> Tensor:
        ctx.save_for_backward(gradient)
        return loss.clone()

    @staticmethod
    @once_differentiable  # a second derivative through a stored gradient would be silently 0
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None]:
        (gradient,) = ctx.saved_tensors
        return grad_output * gradient, None, None


def _squared_distances_on_sphere(anchor_unit: Tensor, unit: Tensor) -> Tensor:
    """[A, N] squared Euclidean distances 2 − 2·cos between unit rows [A, D] and [N, D]."""
    cosine = anchor_unit @ unit.T
    return (2 - 2 * cosine).clamp(0, MAX_SQUARED_DISTANCE)


def _check_loss_arguments(embeddings, positives, bins, kernel, sigma, anchors) -> None:
    """Raise ConfigError naming the Hydra field (loss.bins / loss.kernel / loss.sigma) at fault."""
    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or bins < 1:
        raise ConfigError(
            f"loss.bins={bins!r}: must be an integer >= 1 (the reference report used 100)"
        )
    if kernel not in KERNELS:
        raise ConfigError(f"loss.kernel={kernel!r}: must be one of {', '.join(KERNELS)}")
    _check_sigma(kernel, sigma)
    if embeddings.dim() != 2 or not embeddings.is_floating_point():
        raise ConfigError(
            f"embeddings: expected a 2-D float tensor [N, D], got {embeddings.dtype} "
            f"of shape {tuple(embeddings.shape)}"
        )
    num_items = embeddings.shape[0]
    if positives.dtype != torch.bool or tuple(positives.shape) != (num_items, num_items):
        raise ConfigError(
            f"positives: expected a bool tensor [N, N] = [{num_items}, {num_items}] matching "
            f"embeddings, got {positives.dtype} of shape {tuple(positives.shape)}"
        )
    if anchors is not None and (anchors.dim() != 1 or anchors.is_floating_point()):
        raise ConfigError(
            f"anchors: expected a 1-D integer tensor of row indices, got {anchors.dtype} "
            f"of shape {tuple(anchors.shape)}"
        )


def _check_sigma(kernel: str, sigma: float | None) -> None:
    if kernel == "triangular" and sigma is not None:
        raise ConfigError(
            f"loss.sigma={sigma!r}: only the gaussian kernel uses sigma (the triangular one is "
            "one bin wide, 4 / loss.bins); set loss.sigma=null or loss.kernel=gaussian"
        )
    if kernel == "gaussian" and (
        sigma is None or isinstance(sigma, bool) or not math.isfinite(sigma) or sigma <= 0
    ):
        raise ConfigError(
            f"loss.sigma={sigma!r}: loss.kernel=gaussian needs a bandwidth > 0 in "
            "squared-distance units (range [0, 4]), e.g. loss.sigma=0.05 with loss.bins=100"
        )
