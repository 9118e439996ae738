"""fastap_loss against a naive O(N²·bins) re-implementation and pytorch-metric-learning."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fastap_lab.errors import ConfigError
from fastap_lab.losses.fastap import fastap_loss, soft_histograms, split_histograms
from fastap_lab.losses.positives import (
    positives_from_labels,
    positives_from_times,
    positives_from_views,
)


def naive_fastap(embeddings, positives, bins, sigma=None):
    """Straight from the paper's formula, one anchor at a time, dense over all centres."""
    unit = embeddings / embeddings.norm(dim=1, keepdim=True)
    n = unit.shape[0]
    centres = torch.linspace(0, 4, bins + 1, dtype=unit.dtype)
    delta = 4 / bins
    per_anchor = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        dist = ((unit[i] - unit[others]) ** 2).sum(dim=1)  # [N-1]
        is_pos = torch.tensor([bool(positives[i, j]) for j in others])
        if not is_pos.any():
            continue
        if sigma is None:
            weights = torch.relu(1 - (dist[:, None] - centres[None, :]).abs() / delta)
        else:
            gauss = torch.exp(-((dist[:, None] - centres[None, :]) ** 2) / (2 * sigma**2))
            weights = gauss / gauss.sum(dim=1, keepdim=True)
        h_pos = weights[is_pos].sum(dim=0)
        h_all = weights.sum(dim=0)
        cum_pos, cum_all = h_pos.cumsum(0), h_all.cumsum(0)
        # A term is at most H_k, so those below 1e-100 are dropped: their float64 gradient
        # (1 / H_k²) would overflow while they are worth nothing.
        terms = [h_pos[k] * cum_pos[k] / cum_all[k] for k in range(bins + 1) if cum_all[k] > 1e-100]
        per_anchor.append(1 - sum(terms) / is_pos.sum())
    if not per_anchor:
        return embeddings.sum() * 0
    return torch.stack(per_anchor).mean()


def value_and_grad(loss_fn, embeddings):
    leaf = embeddings.detach().clone().requires_grad_(True)
    loss = loss_fn(leaf)
    (grad,) = torch.autograd.grad(loss, leaf)
    return loss.detach(), grad


def random_case(n, d, num_labels, seed):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(n, d, dtype=torch.float64, generator=generator)
    labels = torch.randint(0, num_labels, (n,), generator=generator)
    return embeddings, labels


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


def test_positive_mask_builders_match_brute_force():
    generator = torch.Generator().manual_seed(4)
    labels = torch.randint(0, 4, (15,), generator=generator)
    by_labels = [[i != j and labels[i] == labels[j] for j in range(15)] for i in range(15)]
    assert positives_from_labels(labels).tolist() == by_labels

    frames, views = 5, 3
    row_frame = [(n % frames) for n in range(frames * views)]
    n = frames * views
    by_views = [[i != j and row_frame[i] == row_frame[j] for j in range(n)] for i in range(n)]
    assert positives_from_views(frames, views).tolist() == by_views

    times = torch.rand(20, generator=generator) * 3
    groups = torch.randint(0, 2, (20,), generator=generator)
    by_times = [
        [i != j and abs(times[i] - times[j]) <= 0.5 and groups[i] == groups[j] for j in range(20)]
        for i in range(20)
    ]
    assert positives_from_times(times, 0.5, groups).tolist() == by_times
    ungrouped = [[i != j and abs(times[i] - times[j]) <= 0.5 for j in range(20)] for i in range(20)]
    assert positives_from_times(times, 0.5).tolist() == ungrouped


@pytest.mark.parametrize("window", [0.0, 1.0, 2.0, 2.5])
def test_temporal_positives_include_the_window_exactly(window):
    # Integer times hit the window exactly: |dt| == window is a positive (<=), |dt| == window +
    # 1 is not; window 0 keeps only other frames at the same time.
    times = torch.tensor([0.0, 1.0, 2.0, 3.0, 3.0, 5.0])
    expected = (times[:, None] - times[None]).abs() <= window
    expected &= ~torch.eye(6, dtype=torch.bool)
    mask = positives_from_times(times, window)
    assert mask.tolist() == expected.tolist()
    assert mask[3, 4]  # same time, distinct frames
    if window == 2.0:
        assert mask[0, 2] and mask[3, 5] and not mask[0, 3]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"bins": 0}, "loss.bins=0"),
        ({"bins": 2.5}, "loss.bins=2.5"),
        ({"kernel": "box"}, "loss.kernel='box'"),
        ({"kernel": "gaussian"}, "loss.sigma=None"),
        ({"kernel": "gaussian", "sigma": -0.1}, "loss.sigma=-0.1"),
        ({"kernel": "gaussian", "sigma": 0}, "loss.sigma=0"),
        ({"kernel": "gaussian", "sigma": 0.0}, "loss.sigma=0.0"),
        ({"kernel": "gaussian", "sigma": float("nan")}, "loss.sigma=nan"),
        ({"sigma": 0.05}, "loss.sigma=0.05"),
        ({"positives": torch.ones(4, 5, dtype=torch.bool)}, "positives"),
        ({"positives": torch.ones(4, 4)}, "positives"),
        ({"embeddings": torch.randn(4)}, "embeddings"),
        ({"anchors": torch.tensor([0.5])}, "anchors"),
    ],
)
def test_bad_arguments_raise_config_error_naming_the_field(kwargs, field):
    arguments = {"embeddings": torch.randn(4, 3), "positives": torch.eye(4, dtype=torch.bool)}
    arguments.update(kwargs)
    embeddings, positives = arguments.pop("embeddings"), arguments.pop("positives")
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as raised:
        fastap_loss(embeddings, positives, **arguments)
    assert "\n" not in str(raised.value)  # one line on the command line


@pytest.mark.parametrize(
    "kwargs", [{"bins": 1}, {"kernel": "gaussian", "sigma": 1e-6}, {"anchors": torch.tensor([3])}]
)
def test_smallest_valid_arguments_are_accepted(kwargs):
    embeddings = torch.eye(4, 3, dtype=torch.float64) + 0.1
    positives = positives_from_labels(torch.tensor([0, 0, 1, 1]))
    assert torch.isfinite(fastap_loss(embeddings, positives, **kwargs))


class LargestTensorSeen(TorchDispatchMode):
    """Records the largest number of elements of any tensor an op returns (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for item in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(item, torch.Tensor):
                self.largest = max(self.largest, item.numel())
        return out


def test_triangular_never_allocates_a_pairs_by_bins_tensor():
    n, bins = 2048, 100
    embeddings = torch.randn(n, 16, requires_grad=True)
    positives = positives_from_labels(torch.arange(n) // 8)
    with LargestTensorSeen() as seen:
        fastap_loss(embeddings, positives, bins=bins).backward()
    # A dense implementation returns N²·(bins + 1) elements; ours at most the [N, N, 2] weights.
    assert n * n <= seen.largest <= 2 * n * n


@pytest.mark.parametrize(
    ("bins", "sigma", "window"), [(100, 0.05, 19), (10, 0.3, 11), (100, 0.001, 5)]
)
def test_gaussian_touches_only_the_centres_within_six_sigmas(bins, sigma, window):
    # The window holds 2·(ceil(6σ / Δ) + 1) + 1 centres (all bins + 1 when that is more), so
    # the largest tensor is the [N, N, window] weights: cost O(N²·window), not O(N²·bins).
    n = 64
    embeddings = torch.randn(n, 8, generator=torch.Generator().manual_seed(5)).requires_grad_(True)
    positives = positives_from_labels(torch.arange(n) // 4)
    with LargestTensorSeen() as seen:
        fastap_loss(embeddings, positives, bins=bins, kernel="gaussian", sigma=sigma).backward()
    assert seen.largest == n * n * window


def test_loss_messages_say_what_to_do():
    x, eye = torch.randn(4, 3), torch.eye(4, dtype=torch.bool)
    expected = {
        "loss.sigma=0.05: only the gaussian kernel uses sigma (the triangular one is one bin"
        " wide, 4 / loss.bins); set loss.sigma=null or loss.kernel=gaussian": {"sigma": 0.05},
        "loss.sigma=0: loss.kernel=gaussian needs a bandwidth > 0 in squared-distance units"
        " (range [0, 4]), e.g. loss.sigma=0.05 with loss.bins=100": {
            "kernel": "gaussian",
            "sigma": 0,
        },
        "loss.kernel='box': must be one of triangular, gaussian": {"kernel": "box"},
    }
    for message, kwargs in expected.items():
        with pytest.raises(ConfigError) as raised:
            fastap_loss(x, eye, **kwargs)
        assert str(raised.value) == message


def test_documented_defaults():
    # fastap_loss and split_histograms default to the paper's triangular kernel with 10 bins.
    embeddings, labels = random_case(20, 4, num_labels=3, seed=9)
    positives = positives_from_labels(labels)
    torch.testing.assert_close(
        fastap_loss(embeddings, positives), fastap_loss(embeddings, positives, bins=10)
    )
    assert fastap_loss(embeddings, positives) != fastap_loss(embeddings, positives, bins=11)
    distances = torch.rand(3, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    mask = torch.ones(3, 8, dtype=torch.bool)
    torch.testing.assert_close(
        split_histograms(distances, mask, mask, 10),
        split_histograms(distances, mask, mask, 10, kernel="triangular"),
    )


def test_positive_masks_defaults_and_errors():
    assert torch.equal(positives_from_views(4), positives_from_labels(torch.arange(4).repeat(2)))
    with pytest.raises(ConfigError, match=r"window=-1\.0: the time window must be >= 0"):
        positives_from_times(torch.zeros(3), -1.0)


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


@pytest.mark.parametrize("threads", [1, 2])
def test_anchor_blocks_on_worker_threads_equal_one_block(monkeypatch, threads):
    # 5-row blocks (the last one short) spread over worker threads, with an anchor subset.
    from fastap_lab import threads as thread_pool
    from fastap_lab.losses import fastap

    embeddings, labels = random_case(48, 6, num_labels=5, seed=21)
    positives = positives_from_labels(labels)
    anchors = torch.tensor([0, 5, 7, 11, 12, 19, 30, 31, 40, 47, 3, 2])
    one_block = [
        value_and_grad(lambda x, a=a: fastap_loss(x, positives, bins=10, anchors=a), embeddings)
        for a in (None, anchors)
    ]
    monkeypatch.setattr(fastap, "CPU_BLOCK_ENTRIES", 5 * 48)
    monkeypatch.setattr(thread_pool, "idle_cores", lambda: threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        blocked = [
            value_and_grad(lambda x, a=a: fastap_loss(x, positives, bins=10, anchors=a), embeddings)
            for a in (None, anchors)
        ]
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(blocked, one_block, atol=1e-15, rtol=1e-13)
    with torch.no_grad():  # no gradient wanted: blocks return values only
        torch.testing.assert_close(fastap_loss(embeddings, positives, bins=10), blocked[0][0])
