"""The triangular kernel's closed-form gradient (the CPU path) against autograd.

The reference is the single-call autograd path that the GPU and torch.compile take
(``fastap._anchor_loss_sum``); the naive and pml comparisons in test_fastap_loss.py cover the
public function, whichever path it takes.
"""

import pytest
import torch

from fastap_lab.losses import fastap
from fastap_lab.losses.fastap_closed_form import triangular_block
from fastap_lab.losses.positives import positives_from_labels
from tests.unit.fastap_reference import random_case, value_and_grad


def autograd_path(monkeypatch):
    """fastap_loss forced onto the single-call autograd path (as under torch.compile)."""
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)


@pytest.mark.parametrize("bins", [1, 10, 100])
@pytest.mark.parametrize("subset", [False, True])
def test_closed_form_equals_autograd(monkeypatch, bins, subset):
    embeddings, labels = random_case(40, 5, num_labels=4, seed=bins)
    positives = positives_from_labels(labels)
    positives[3, 3] = False  # the diagonal is ignored whatever it holds
    anchors = torch.tensor([7, 0, 39, 12, 3, 21]) if subset else None
    closed = value_and_grad(
        lambda x: fastap.fastap_loss(x, positives, bins=bins, anchors=anchors), embeddings
    )
    autograd_path(monkeypatch)
    reference = value_and_grad(
        lambda x: fastap.fastap_loss(x, positives, bins=bins, anchors=anchors), embeddings
    )
    torch.testing.assert_close(closed, reference, atol=1e-14, rtol=1e-12)
    assert closed[1].abs().sum() > 0


def test_duplicate_and_opposite_rows_equal_autograd(monkeypatch):
    # Identical rows (d = 0) and opposite rows (d = 4) sit on the ends of the range.
    base, labels = random_case(12, 4, num_labels=3, seed=2)
    embeddings = torch.cat([base, base[:4], -base[4:8]])
    positives = positives_from_labels(torch.cat([labels, labels[:4], labels[4:8]]))
    closed = value_and_grad(lambda x: fastap.fastap_loss(x, positives, bins=10), embeddings)
    autograd_path(monkeypatch)
    reference = value_and_grad(lambda x: fastap.fastap_loss(x, positives, bins=10), embeddings)
    torch.testing.assert_close(closed, reference, atol=1e-14, rtol=1e-12)


def test_cosines_past_one_pass_no_gradient_like_clamp():
    # Rows a little longer than 1 give cosines above 1 between equal rows and below -1 between
    # opposite ones: distances below 0 or above 4, clamped, where autograd's clamp passes no
    # gradient. The closed form and the autograd path must agree on both ends.
    base, labels = random_case(10, 3, num_labels=2, seed=4)
    rows = torch.cat([base, base, -base])
    unit = torch.nn.functional.normalize(rows, dim=1) * (1 + 1e-6)
    positives = positives_from_labels(torch.cat([labels, labels, labels]))
    anchors = torch.arange(30)
    total, cosine_grad, counted = triangular_block(unit, anchors, positives, 10, True)
    leaf = unit.clone().requires_grad_(True)
    distances = 2 - 2 * (leaf @ leaf.T).detach()
    masks = fastap._anchor_masks(positives, None, 30)
    expected = fastap._anchor_loss_sum(leaf, *masks, (10, "triangular", None))
    assert distances.min() < 0 and distances.max() > 4  # both ends of the clamp are reached
    (expected_grad,) = torch.autograd.grad(expected, leaf)
    gradient = cosine_grad.T @ unit + cosine_grad @ unit
    torch.testing.assert_close(total, expected.detach(), atol=1e-14, rtol=1e-12)
    torch.testing.assert_close(gradient, expected_grad, atol=1e-12, rtol=1e-10)
    assert int(counted) == 30


@pytest.mark.parametrize(("kernel_args", "closed_form"), [
    ({}, True), ({"kernel": "gaussian", "sigma": 0.1}, False),
])  # fmt: skip
def test_the_cpu_takes_the_closed_form_for_the_triangular_kernel(monkeypatch, kernel_args,
                                                                 closed_form):  # fmt: skip
    # Both paths give the same numbers, so only the call says which one ran (the closed form is
    # the fast one: BENCHMARKS.md).
    calls = []

    def spy(*args):
        calls.append(args)
        return triangular_block(*args)

    monkeypatch.setattr(fastap, "triangular_block", spy)
    embeddings, labels = random_case(20, 4, num_labels=3, seed=6)
    value_and_grad(lambda x: fastap.fastap_loss(x, positives_from_labels(labels), bins=10,
                                                **kernel_args), embeddings)  # fmt: skip
    assert bool(calls) == closed_form


def test_float32_follows_float64():
    embeddings, labels = random_case(64, 8, num_labels=5, seed=9)
    positives = positives_from_labels(labels)
    loss_fn = lambda x: fastap.fastap_loss(x, positives, bins=100)  # noqa: E731
    single = value_and_grad(loss_fn, embeddings.float())
    double = value_and_grad(loss_fn, embeddings)
    torch.testing.assert_close(single[0].double(), double[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(single[1].double(), double[1], atol=1e-5, rtol=1e-3)


def test_no_gradient_wanted_gives_the_same_value():
    embeddings, labels = random_case(30, 4, num_labels=3, seed=1)
    positives = positives_from_labels(labels)
    with_grad = fastap.fastap_loss(embeddings.requires_grad_(True), positives, bins=20)
    with torch.no_grad():
        without = fastap.fastap_loss(embeddings, positives, bins=20)
    assert without.grad_fn is None
    torch.testing.assert_close(without, with_grad.detach(), atol=0, rtol=0)
