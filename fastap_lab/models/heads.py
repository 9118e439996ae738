"""MLP heads: SimSiam projector / predictor and the FastAP embedding head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _linear_bn_relu(in_dim: int, out_dim: int) -> list[nn.Module]:
    return [nn.Linear(in_dim, out_dim, bias=False), nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True)]


class Projector(nn.Sequential):
    """SimSiam projector: ``[B, in_dim] -> [B, dim]``.

    ``num_layers`` linear layers, BN after each; ReLU after all but the last; the output BN
    has no affine parameters (as in the SimSiam paper, it keeps the output from collapsing
    to a per-dimension constant scale).
    """

    def __init__(self, in_dim: int, dim: int = 2048, num_layers: int = 3) -> None:
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(num_layers - 1):
            layers += _linear_bn_relu(width, dim)
            width = dim
        layers += [nn.Linear(width, dim, bias=False), nn.BatchNorm1d(dim, affine=False)]
        super().__init__(*layers)
        self.out_dim = dim


class Predictor(nn.Sequential):
    """SimSiam predictor bottleneck: ``[B, dim] -> [B, bottleneck] -> [B, dim]``."""

    def __init__(self, dim: int = 2048, bottleneck: int = 512) -> None:
        super().__init__(*_linear_bn_relu(dim, bottleneck), nn.Linear(bottleneck, dim))


class EmbeddingHead(nn.Module):
    """FastAP embedding head: ``[B, in_dim] -> [B, dim]``, rows L2-normalised."""

    def __init__(self, in_dim: int = 2048, dim: int = 256) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, dim)
        self.out_dim = dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Unit-norm embeddings [B, D] of ``features``."""
        return F.normalize(self.linear(features), dim=1)


class EmbeddingNetwork(nn.Sequential):
    """The embedding layers of a stage module, as one exportable network.

    What a stage module embeds with after the input normalisation: preprocessed float32
    ``[B, C, H, W] -> float32 [B, D]`` through ``layers`` (shared with the module, not copied),
    rows L2-normalised when ``normalize`` (the FastAP head normalises itself). Exported as is
    (``python -m fastap_lab.export``).
    """

    def __init__(self, *layers: nn.Module, normalize: bool = True) -> None:
        super().__init__(*layers)
        self.normalize = normalize
        self.training = layers[0].training  # the layers' mode (not set on them: shared)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Preprocessed float32 [B, C, H, W] -> float32 [B, D], L2-normalised when ``normalize``."""
        features = super().forward(images).float()
        return F.normalize(features, dim=1) if self.normalize else features
