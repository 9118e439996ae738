"""Image backbones: torchvision ResNets turned into feature extractors.

Weights are always random (``weights=None``): nothing is downloaded at run time.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from fastap_lab.errors import ConfigError

RESNETS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}
STEMS = ("imagenet", "small")


class ResNetBackbone(nn.Module):
    """ResNet trunk without its classifier: ``[B, C, H, W] -> [B, out_dim]``.

    Args:
        name: ``resnet18`` | ``resnet34`` | ``resnet50``.
        in_channels: 1 for gray frames, 3 for RGB. The first conv is rebuilt for it.
        stem: ``imagenet`` keeps the 7x7/2 conv + max-pool (cheap; right for >= 64 px);
            ``small`` uses a 3x3/1 conv and no max-pool (CIFAR-style; keeps detail in
            32-64 px frames at ~16x the compute of the ImageNet stem).
        zero_init_residual: start each residual branch at zero (stabilises early training).
        pool: ``avg`` global average pooling (translation invariant: where a structure lies
            is lost) or ``grid``: average over a ``grid`` x ``grid`` layout of the last feature
            map, flattened, so the embedding keeps coarse position (e.g. the diaphragm's height).
        grid: cells per side for ``pool=grid``; ``out_dim`` is the trunk's channels x grid².
    """

    def __init__(
        self,
        name: str = "resnet18",
        in_channels: int = 1,
        stem: str = "imagenet",
        zero_init_residual: bool = True,
        pool: str = "avg",
        grid: int = 2,
    ) -> None:
        super().__init__()
        if name not in RESNETS:
            raise ConfigError(f"backbone.name={name!r}: unknown; choose one of {sorted(RESNETS)}")
        if stem not in STEMS:
            raise ConfigError(f"backbone.stem={stem!r}: unknown; choose one of {list(STEMS)}")
        if in_channels not in (1, 3):
            raise ConfigError(f"backbone.in_channels={in_channels}: must be 1 (gray) or 3 (RGB)")
        net = getattr(torchvision.models, name)(weights=None, zero_init_residual=zero_init_residual)
        if stem == "small":
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        if pool not in ("avg", "grid") or grid < 1:
            raise ConfigError(
                f"backbone.pool={pool!r}, grid={grid}: pool is avg or grid, grid >= 1"
            )
        net.fc = nn.Identity()
        if pool == "grid":
            net.avgpool = nn.AdaptiveAvgPool2d(grid)  # torchvision flattens after avgpool
        self.net = net
        self.out_dim = RESNETS[name] * (grid * grid if pool == "grid" else 1)
        self.in_channels = in_channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images``: float [B, C, H, W], already normalised. Returns [B, out_dim]."""
        return self.net(images)
