"""Probe (issue 12, part 4): MIND-like self-similarity descriptors of the pixels (Heinrich et
al. 2012) as an intensity-invariant input for cross-contrast retrieval, beside
adabn_crosscontrast.py. Not part of the framework. Usage:

    python experiments/scripts/mind_crosscontrast.py ROOT   # a --set target_contrast=t2 phantom
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
import adabn_crosscontrast as cc  # noqa: E402

OFFSETS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1))


def mind(images: torch.Tensor, size: int, radius: int) -> torch.Tensor:
    """uint8 [N, 1, H, W] -> [N, 8 * size * size]: exp(-patch SSD to 8 shifted copies / its mean)."""
    x = F.interpolate(images.float() / 255.0, size=(size, size), mode="area")
    distances = torch.cat([
        F.avg_pool2d((x - torch.roll(x, (dy * radius, dx * radius), (2, 3))) ** 2, 3, 1, 1)
        for dy, dx in OFFSETS
    ], 1)  # fmt: skip
    variance = distances.mean(1, keepdim=True).clamp_min(1e-4)
    return torch.exp(-distances / variance).flatten(1)


def standardise(features: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    mean, std = reference.mean(0), reference.std(0).clamp_min(1e-6)
    return F.normalize((features - mean) / std, dim=1)


def main() -> None:
    data = cc.load(Path(sys.argv[1]))
    gallery_labels, target_labels = data["frames"].labels, data["target_labels"]
    queries = torch.stack([q.image for q in data["queries"]])
    for size in (16, 32):
        for radius in (1, 2):
            g, t, q = (
                mind(x, size, radius) for x in (data["frames"].images, data["target"], queries)
            )
            for name, ref in (("source-standardised", g), ("per-domain", t)):
                G, T, Q = standardise(g, g), standardise(t, ref), standardise(q, ref)
                p10 = cc.positives(T, G, target_labels, gallery_labels, 10).float() / 10
                hold = target_labels == 1
                counts = [
                    [int(cc.positives(Q[i : i + 1], G, torch.tensor([query.label]), gallery_labels, k)) for k in (10, 50)]
                    for i, query in enumerate(data["queries"])
                ]  # fmt: skip
                print(
                    f"MIND {size} px r={radius} {name}: target P@10 {p10.mean():.3f}, label 1"
                    f" {p10[hold].mean():.3f} (share >= 8/10: {(p10[hold] >= 0.8).float().mean():.3f});"
                    f" invivo / invivo_exhale top 10, 50: {counts}"
                )


if __name__ == "__main__":
    main()
