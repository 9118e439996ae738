"""ResNet backbones built whole (integration tier: seconds each): output shapes per name and
stem, grid pooling keeps where a structure is."""

from __future__ import annotations

import pytest
import torch

from fastap_lab.models import ResNetBackbone


@pytest.mark.parametrize(
    ("name", "stem", "dim"),
    [("resnet18", "imagenet", 512), ("resnet18", "small", 512), ("resnet34", "imagenet", 512)],
)
def test_backbone_shapes(name, stem, dim):
    net = ResNetBackbone(name, in_channels=1, stem=stem).eval()
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, dim) and net.out_dim == dim


def test_grid_pooling_keeps_where_a_structure_is():
    # The same bright blob at the top or the bottom of the frame: global average pooling of a
    # translation-equivariant trunk sees (nearly) the same thing; grid pooling does not.
    torch.manual_seed(0)
    top, bottom = torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 64, 64)
    top[..., 8:20, 24:40], bottom[..., 44:56, 24:40] = 1.0, 1.0
    pooled = {}
    for pool in ("avg", "grid"):
        torch.manual_seed(0)
        net = ResNetBackbone(pool=pool, grid=2, zero_init_residual=False).eval()
        with torch.no_grad():
            a, b = net(top)[0], net(bottom)[0]
        assert a.shape == (net.out_dim,) and net.out_dim == 512 * (4 if pool == "grid" else 1)
        pooled[pool] = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    assert pooled["grid"] < pooled["avg"] - 0.05
