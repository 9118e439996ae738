"""fastap_loss against a naive O(N²·bins) re-implementation and pytorch-metric-learning."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fastap_lab.errors import ConfigError
from fastap_lab.losses.fastap import (
    fastap_loss,
    positives_from_labels,
    positives_from_times,
    positives_from_views,
    soft_histograms,
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


@pytest.mark.parametrize(("bins", "sigma"), [(100, 0.05), (10, 0.3), (20, 0.02)])
def test_gaussian_matches_untruncated_reference(bins, sigma):
    embeddings, labels = random_case(30, 6, num_labels=4, seed=bins)
    positives = positives_from_labels(labels)
    ours = value_and_grad(
        lambda x: fastap_loss(x, positives, bins=bins, kernel="gaussian", sigma=sigma), embeddings
    )
    ref = value_and_grad(lambda x: naive_fastap(x, positives, bins, sigma=sigma), embeddings)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)
    assert ours[1].abs().sum() > 0


@pytest.mark.parametrize("kernel_args", [{}, {"kernel": "gaussian", "sigma": 0.1}])
def test_every_distance_spreads_unit_mass(kernel_args):
    distances = torch.rand(9, 50, dtype=torch.float64) * 4
    distances[0, :3] = torch.tensor([0.0, 4.0, 2.0])  # the range ends and an exact centre
    mask = torch.rand(9, 50) < 0.6
    hist = soft_histograms(distances, mask, bins=10, **kernel_args)
    torch.testing.assert_close(hist.sum(dim=1), mask.sum(dim=1).to(hist.dtype))


def test_gaussian_with_tiny_sigma_is_hard_binning():
    bins = 10
    distances = torch.rand(6, 40, dtype=torch.float64) * 4
    mask = torch.ones(6, 40, dtype=torch.bool)
    hist = soft_histograms(distances, mask, bins, kernel="gaussian", sigma=0.4 / bins / 20)
    nearest = torch.round(distances / (4 / bins)).long()
    hard = torch.stack([torch.bincount(row, minlength=bins + 1) for row in nearest])
    torch.testing.assert_close(hist, hard.to(hist.dtype), atol=1e-6, rtol=0)


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
    embeddings = torch.randn(10, 4, requires_grad=True)
    loss = fastap_loss(embeddings, torch.eye(10, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()
    assert torch.equal(embeddings.grad, torch.zeros_like(embeddings))


def test_perfect_ranking_gives_zero_and_random_is_within_unit_interval():
    labels = torch.arange(24) // 4
    noise = 1e-4 * torch.randn(24, 6, dtype=torch.float64)
    perfect = torch.eye(6, dtype=torch.float64)[labels] + noise  # classes mutually orthogonal
    positives = positives_from_labels(labels)
    assert fastap_loss(perfect, positives, bins=10).item() == pytest.approx(0, abs=1e-6)
    for seed in range(5):
        embeddings, labels = random_case(30, 3, num_labels=3, seed=seed)
        loss = fastap_loss(embeddings.float(), positives_from_labels(labels), bins=20)
        assert loss.dtype == torch.float32 and 0 < loss.item() < 1


def test_positive_mask_builders_match_brute_force():
    labels = torch.randint(0, 4, (15,))
    by_labels = [[i != j and labels[i] == labels[j] for j in range(15)] for i in range(15)]
    assert positives_from_labels(labels).tolist() == by_labels

    frames, views = 5, 3
    row_frame = [(n % frames) for n in range(frames * views)]
    n = frames * views
    by_views = [[i != j and row_frame[i] == row_frame[j] for j in range(n)] for i in range(n)]
    assert positives_from_views(frames, views).tolist() == by_views

    times = torch.rand(20) * 3
    groups = torch.randint(0, 2, (20,))
    by_times = [
        [i != j and abs(times[i] - times[j]) <= 0.5 and groups[i] == groups[j] for j in range(20)]
        for i in range(20)
    ]
    assert positives_from_times(times, 0.5, groups).tolist() == by_times
    ungrouped = [[i != j and abs(times[i] - times[j]) <= 0.5 for j in range(20)] for i in range(20)]
    assert positives_from_times(times, 0.5).tolist() == ungrouped


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"bins": 0}, "loss.bins=0"),
        ({"bins": 2.5}, "loss.bins=2.5"),
        ({"kernel": "box"}, "loss.kernel='box'"),
        ({"kernel": "gaussian"}, "loss.sigma=None"),
        ({"kernel": "gaussian", "sigma": -0.1}, "loss.sigma=-0.1"),
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
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        fastap_loss(embeddings, positives, **arguments)


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
