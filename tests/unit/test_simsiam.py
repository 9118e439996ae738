"""SimSiam pieces: loss properties, stop-gradient, collapse monitor, heads, backbone names."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fastap_lab.errors import ConfigError
from fastap_lab.losses.simsiam import normalized_std, simsiam_loss
from fastap_lab.models import EmbeddingHead, Predictor, Projector, ResNetBackbone


def test_loss_matches_definition_and_bounds():
    torch.manual_seed(0)
    p1, p2, z1, z2 = (torch.randn(8, 16, dtype=torch.float64) for _ in range(4))
    expected = -0.5 * (F.cosine_similarity(p1, z2).mean() + F.cosine_similarity(p2, z1).mean())
    assert torch.allclose(simsiam_loss(p1, p2, z1, z2), expected)
    assert simsiam_loss(z2, z1, z1, z2).item() == pytest.approx(-1.0)
    assert simsiam_loss(-z2, -z1, z1, z2).item() == pytest.approx(1.0)


def test_stop_gradient_on_projections():
    p1, p2, z1, z2 = (torch.randn(4, 8, requires_grad=True) for _ in range(4))
    simsiam_loss(p1, p2, z1, z2).backward()
    assert z1.grad is None and z2.grad is None
    assert p1.grad is not None and p2.grad is not None


def test_loss_is_scale_invariant():
    p1, p2, z1, z2 = (torch.randn(4, 8, dtype=torch.float64) for _ in range(4))
    assert torch.allclose(simsiam_loss(3 * p1, p2, z1, 0.5 * z2), simsiam_loss(p1, p2, z1, z2))


def test_collapse_monitor():
    torch.manual_seed(0)
    spread = torch.randn(4096, 64)
    assert normalized_std(spread).item() == pytest.approx(1.0, abs=0.05)
    collapsed = torch.ones(256, 64) + 1e-4 * torch.randn(256, 64)
    assert normalized_std(collapsed).item() < 0.01
    one_hot_dims = F.one_hot(torch.arange(256) % 2, 64).float()  # two points only
    # dims 0 and 1 have std 0.5, the other 62 have 0: mean 1/64, times sqrt(64)
    assert normalized_std(one_hot_dims).item() == pytest.approx(
        (2 * 0.5 / 64) * math.sqrt(64), rel=0.01
    )


def test_backbone_rejects_unknown_names():
    with pytest.raises(ConfigError, match="backbone.name"):
        ResNetBackbone("vgg11")
    with pytest.raises(ConfigError, match="backbone.stem"):
        ResNetBackbone(stem="tiny")
    with pytest.raises(ConfigError, match="backbone.pool"):
        ResNetBackbone(pool="max")


def test_heads():
    projector = Projector(512, 64, num_layers=3)
    z = projector(torch.randn(16, 512))
    assert z.shape == (16, 64)
    # the output BatchNorm is non-affine: in training mode each dimension is standardised
    assert torch.allclose(z.mean(0), torch.zeros(64), atol=1e-5)
    assert not projector[-1].affine
    assert Predictor(64, 16)(z).shape == (16, 64)
    e = EmbeddingHead(64, 8)(z)
    assert torch.allclose(e.norm(dim=1), torch.ones(16), atol=1e-5)
