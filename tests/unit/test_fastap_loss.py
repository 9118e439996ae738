"""fastap_loss against a naive O(N²·bins) re-implementation and pytorch-metric-learning."""

import pytest
import torch

from fastap_lab.losses.fastap import fastap_loss
from fastap_lab.losses.histograms import soft_histograms
from fastap_lab.losses.positives import (
    positives_from_labels,
)
from tests.unit.fastap_reference import naive_fastap, random_case, value_and_grad


@pytest.mark.parametrize(("n", "d", "bins"), [(12, 3, 1), (40, 8, 10), (33, 5, 100), (24, 16, 7)])
def test_triangular_matches_naive_reference(n, d, bins):
    embeddings, labels = random_case(n, d, num_labels=4, seed=n + bins)
    positives = positives_from_labels(labels)
    ours = value_and_grad(lambda x: fastap_loss(x, positives, bins=bins), embeddings)
    ref = value_and_grad(lambda x: naive_fastap(x, positives, bins), embeddings)
    torch.testing.assert_close(ours, ref, atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize(("n", "d", "bins"), [(16, 4, 1), (64, 8, 10), (50, 32, 100)])
def test_triangular_matches_pytorch_metric_learning(n, d, bins):
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    embeddings, labels = random_case(n, d, num_labels=6, seed=7 * n + bins)
    positives = positives_from_labels(labels)
    ours = value_and_grad(lambda x: fastap_loss(x, positives, bins=bins), embeddings)
    pml = value_and_grad(lambda x: pml_losses.FastAPLoss(num_bins=bins)(x, labels), embeddings)
    torch.testing.assert_close(ours, pml, atol=1e-9, rtol=1e-7)


def assert_gaussian_matches_reference(embeddings, positives, bins, sigma):
    """Gaussian-kernel loss and gradient equal to the untruncated reference, and a gradient."""
    ours = value_and_grad(
        lambda x: fastap_loss(x, positives, bins=bins, kernel="gaussian", sigma=sigma), embeddings
    )
    ref = value_and_grad(lambda x: naive_fastap(x, positives, bins, sigma=sigma), embeddings)
    # Ours keeps the centres within 6σ of each distance; the dropped weight is below
    # exp(-6²/2) ≈ 1.5e-8 of the total, so values and gradients agree to ~1e-8, not to float64
    # rounding; 1e-6 leaves room for that and still sees any centre placed wrongly.
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)
    assert ours[1].abs().sum() > 0


@pytest.mark.parametrize(("bins", "sigma"), [(100, 0.05), (10, 0.3), (20, 0.02)])
def test_gaussian_matches_untruncated_reference(bins, sigma):
    embeddings, labels = random_case(30, 6, num_labels=4, seed=bins)
    assert_gaussian_matches_reference(embeddings, positives_from_labels(labels), bins, sigma)


@pytest.mark.parametrize("kernel_args", [{}, {"kernel": "gaussian", "sigma": 0.1}])
def test_every_distance_spreads_unit_mass(kernel_args):
    generator = torch.Generator().manual_seed(1)
    distances = torch.rand(9, 50, dtype=torch.float64, generator=generator) * 4
    distances[0, :3] = torch.tensor([0.0, 4.0, 2.0])  # the range ends and an exact centre
    mask = torch.rand(9, 50, generator=generator) < 0.6
    hist = soft_histograms(distances, mask, bins=10, **kernel_args)
    torch.testing.assert_close(hist.sum(dim=1), mask.sum(dim=1).to(hist.dtype))


def distances_away_from_bin_midpoints(rows, cols, bins, seed):
    """[rows, cols] float64 squared distances in [0, 4], each within 0.45·Δ of a bin centre.

    Every distance sits at least 0.05·Δ from the midpoints between centres (where a narrow
    kernel splits its mass), whatever the seed; the range ends 0 and 4 and exact centres are
    included.
    """
    generator = torch.Generator().manual_seed(seed)
    delta = 4 / bins
    centre = torch.randint(0, bins + 1, (rows, cols), generator=generator)
    offset = (torch.rand(rows, cols, generator=generator, dtype=torch.float64) - 0.5) * 0.9 * delta
    distances = (centre * delta + offset).clamp(0, 4)
    distances[0, :3] = torch.tensor([0.0, 4.0, 2.0])
    return distances


@pytest.mark.parametrize("seed", range(3))
def test_gaussian_with_tiny_sigma_is_hard_binning(seed):
    bins = 10
    delta = 4 / bins
    sigma = delta / 200
    distances = distances_away_from_bin_midpoints(6, 40, bins, seed)
    mask = torch.ones(6, 40, dtype=torch.bool)
    hist = soft_histograms(distances, mask, bins, kernel="gaussian", sigma=sigma)
    nearest = torch.round(distances / delta).long()
    hard = torch.stack([torch.bincount(row, minlength=bins + 1) for row in nearest])
    # A distance at least 0.05·Δ from a midpoint gives its second-nearest centre a weight at
    # most exp(-Δ·0.1·Δ / 2σ²) = exp(-2000) of the nearest one's: 0 in float64. What is left
    # is the rounding of the softmax and of summing 40 weights of 1: ~1e-15, so 1e-12 has room,
    # while a misplaced centre would move a whole unit of mass.
    torch.testing.assert_close(hist, hard.to(hist.dtype), atol=1e-12, rtol=0)


def embeddings_spanning_the_sphere(num_points, seed):
    """[num_points + 2, 3] float64 points whose squared distances cover [0, 4] evenly: angles
    spread over a half circle (distance 2 − 2·cos Δθ), plus an exactly opposite pair and a
    pair opposite to within 1e-4 rad (squared distance 4 − 1e-8), with a little seeded noise
    off the plane."""
    generator = torch.Generator().manual_seed(seed)
    angles = torch.linspace(0, torch.pi, num_points, dtype=torch.float64)
    angles = torch.cat([angles, torch.tensor([0.3, 0.3 + torch.pi - 1e-4], dtype=torch.float64)])
    points = torch.stack([angles.cos(), angles.sin(), torch.zeros_like(angles)], dim=1)
    points[1:-2, 2] = 0.05 * torch.randn(num_points - 1, generator=generator, dtype=torch.float64)
    return points


@pytest.mark.parametrize(("bins", "sigma"), [(100, 0.05), (10, 0.3), (20, 0.02), (50, 0.01)])
def test_gaussian_matches_untruncated_reference_over_the_whole_range(bins, sigma):
    embeddings = embeddings_spanning_the_sphere(26, seed=bins)
    unit = embeddings / embeddings.norm(dim=1, keepdim=True)
    squared = ((unit[:, None] - unit[None]) ** 2).sum(-1)
    assert squared.min() == 0 and squared.max() > 4 - 1e-7  # both ends of [0, 4] are reached
    labels = torch.randint(0, 3, (28,), generator=torch.Generator().manual_seed(bins))
    assert_gaussian_matches_reference(embeddings, positives_from_labels(labels), bins, sigma)


@pytest.mark.parametrize(
    "kernel_args", [{"bins": 5}, {"bins": 8, "kernel": "gaussian", "sigma": 0.3}]
)
def test_gradcheck(kernel_args):
    embeddings, labels = random_case(7, 3, num_labels=2, seed=3)
    positives = positives_from_labels(labels)
    leaf = embeddings.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: fastap_loss(x, positives, **kernel_args), (leaf,))


def test_anchors_without_positives_are_left_out_of_the_mean():
    embeddings, _ = random_case(20, 4, num_labels=1, seed=11)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 3, 4, 4, 4, 5, 6, 6, 7, 8, 8, 8, 8, 9, 9])
    positives = positives_from_labels(labels)
    single = [fastap_loss(embeddings, positives, anchors=torch.tensor([i])) for i in range(20)]
    with_positive = [loss for i, loss in enumerate(single) if positives[i].any()]
    assert len(with_positive) == 16  # labels 2, 3, 5, 7 are alone
    expected = torch.stack(with_positive).mean()
    torch.testing.assert_close(fastap_loss(embeddings, positives), expected)
    torch.testing.assert_close(single[5], torch.zeros((), dtype=torch.float64))


def test_anchor_subset_is_the_mean_over_those_rows():
    embeddings, labels = random_case(30, 5, num_labels=5, seed=5)
    positives = positives_from_labels(labels)
    subset = torch.tensor([3, 17, 4, 29, 0])
    singles = [fastap_loss(embeddings, positives, anchors=subset[k : k + 1]) for k in range(5)]
    expected = torch.stack(singles).mean()
    torch.testing.assert_close(fastap_loss(embeddings, positives, anchors=subset), expected)


def test_no_positives_gives_zero_with_a_gradient_path():
    generator = torch.Generator().manual_seed(2)
    embeddings = torch.randn(10, 4, generator=generator).requires_grad_(True)
    loss = fastap_loss(embeddings, torch.eye(10, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()
    assert torch.equal(embeddings.grad, torch.zeros_like(embeddings))


def test_perfect_ranking_gives_zero():
    labels = torch.arange(24) // 4
    noise = 1e-4 * torch.randn(
        24, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3)
    )
    perfect = torch.eye(6, dtype=torch.float64)[labels] + noise  # classes mutually orthogonal
    positives = positives_from_labels(labels)
    assert fastap_loss(perfect, positives, bins=10).item() == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_worst_ranking_gives_the_closed_form(dtype):
    # Pairs {e_k, -e_k} in D dimensions: each anchor's one positive is its antipode (squared
    # distance 4, the last centre) and its 2D − 2 negatives are orthogonal (distance 2, an exact
    # centre). Only the last bin holds the positive: h⁺ = H⁺ = 1, H = N − 1, so
    # FastAP = 1 / (N − 1) and the loss is 1 − 1 / (N − 1) for every anchor.
    dims = 5
    axes = torch.eye(dims, dtype=dtype)
    embeddings = torch.cat([axes, -axes])
    positives = positives_from_labels(torch.arange(dims).repeat(2))
    loss = fastap_loss(embeddings, positives, bins=10)
    assert loss.dtype == dtype
    assert loss.item() == pytest.approx(1 - 1 / (2 * dims - 1), abs=1e-6)


def test_far_gaussian_tails_give_finite_gradients_in_float32():
    # An anchor whose every neighbour sits at squared distance 0.55: with bins=10 and
    # sigma=0.0379 (an Optuna trial that diverged at step 1), centre 0 receives ~4e-43 of mass,
    # a float32 denormal whose reciprocal overflows. The gradient must stay finite and the
    # loss equal the float64 value (where that mass is representable and negligible).
    cos = 1 - 0.55 / 2
    embeddings = torch.zeros(4, 4)
    embeddings[0, 0] = 1.0
    for i in range(1, 4):
        embeddings[i, 0], embeddings[i, i] = cos, (1 - cos**2) ** 0.5
    positives = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]).bool()
    args = {"bins": 10, "kernel": "gaussian", "sigma": 0.0379}
    single = embeddings.clone().requires_grad_(True)
    loss = fastap_loss(single, positives, **args)
    loss.backward()
    assert torch.isfinite(single.grad).all()
    double = embeddings.double().requires_grad_(True)
    reference = fastap_loss(double, positives, **args)
    reference.backward()
    assert abs(loss.item() - reference.item()) < 1e-6
    assert torch.allclose(single.grad.double(), double.grad, atol=1e-5)
