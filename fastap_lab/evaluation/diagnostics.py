"""Embedding diagnostics: is the embedding space collapsed, and does it separate the labels?

Pure functions on L2-normalised embeddings [N, D] (float tensors, any device; results float64):

* cosine similarities of positive (same label) and negative pairs, and the fraction above 0.99
  (the reference report's symptom: "all scores above 0.99" = a collapsed space);
* per-dimension std: a collapsed space has std ~0 in every dimension; unit vectors spread
  evenly over the sphere have std ~1/sqrt(D), so ``sqrt(D) * mean std`` ~1 is healthy;
* effective rank (Roy & Vetterli 2007; RankMe, Garrido et al. 2023): exp of the entropy of
  the normalised singular values, 1 (collapse) .. D (isotropic);
* alignment and uniformity (Wang & Isola, ICML 2020): mean squared distance of positive pairs
  (lower = tighter classes) and ``log mean exp(-2 ||x - y||^2)`` over all pairs (lower = more
  spread; -4 is the limit of a perfectly uniform sphere in high dimension).

Pairs are all i < j pairs when there are at most ``max_pairs`` of them, else a seeded random
sample of distinct pairs (statistics then estimate the all-pairs values).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

COLLAPSE_THRESHOLD = 0.99


def sample_pairs(num_items: int, max_pairs: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Index pairs (i, j), i < j: all of them, or ``max_pairs`` random ones; long [P] each."""
    total = num_items * (num_items - 1) // 2
    if total <= max_pairs:
        return torch.triu_indices(num_items, num_items, offset=1)
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(0, num_items, (max_pairs,), generator=generator)
    offset = torch.randint(1, num_items, (max_pairs,), generator=generator)
    second = (first + offset) % num_items  # never equal to first
    return torch.minimum(first, second), torch.maximum(first, second)


def pair_cosines(embeddings: Tensor, first: Tensor, second: Tensor) -> Tensor:
    """Cosine similarity of rows ``first[p]`` and ``second[p]`` of unit embeddings, float64 [P]."""
    x = embeddings.double()
    return (x[first] * x[second]).sum(1)


def fraction_above(values: Tensor, threshold: float = COLLAPSE_THRESHOLD) -> float:
    """Share of ``values`` strictly above ``threshold`` (NaN for an empty tensor)."""
    return float((values > threshold).double().mean()) if values.numel() else math.nan


def dimension_std(embeddings: Tensor) -> Tensor:
    """Population std (ddof 0) of each dimension over the N rows: float64 [D]."""
    return embeddings.double().std(0, unbiased=False)


def effective_rank(embeddings: Tensor) -> float:
    """exp(H(p)) with p = singular values of the (uncentred) [N, D] matrix / their sum."""
    singular = torch.linalg.svdvals(embeddings.double())
    p = singular / singular.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def alignment(embeddings: Tensor, first: Tensor, second: Tensor) -> float:
    """Mean ||x_i - x_j||^2 over the given (positive) pairs (Wang & Isola, alpha = 2)."""
    if first.numel() == 0:
        return math.nan
    x = embeddings.double()
    return float((x[first] - x[second]).pow(2).sum(1).mean())


def uniformity(embeddings: Tensor, first: Tensor, second: Tensor, t: float = 2.0) -> float:
    """Log mean exp(-t ||x_i - x_j||^2) over the given pairs (Wang & Isola, t = 2)."""
    if first.numel() == 0:
        return math.nan
    x = embeddings.double()
    energies = -t * (x[first] - x[second]).pow(2).sum(1)
    return float(torch.logsumexp(energies, 0) - math.log(energies.numel()))


def diagnose(
    embeddings: Tensor, labels: Tensor | None, max_pairs: int = 200_000, seed: int = 0
) -> tuple[dict, dict[str, Tensor]]:
    """All diagnostics of [N, D] unit embeddings with int [N] labels (or None).

    Returns:
        ``(summary, similarities)``: a JSON-ready dict, and the sampled ``positive`` /
        ``negative`` (or, without labels, ``all``) pair cosines float64 [P] for histograms.
    """
    first, second = sample_pairs(embeddings.shape[0], max_pairs, seed)
    cosines = pair_cosines(embeddings, first, second)
    stds = dimension_std(embeddings)
    summary = {
        "num_frames": int(embeddings.shape[0]),
        "embedding_dim": int(embeddings.shape[1]),
        "num_pairs": int(first.numel()),
        "pairs_sampled": first.numel() < embeddings.shape[0] * (embeddings.shape[0] - 1) // 2,
        "fraction_pairs_above_0.99": fraction_above(cosines),
        "mean_cosine": float(cosines.mean()) if cosines.numel() else math.nan,
        "dimension_std": {
            "mean": float(stds.mean()),
            "min": float(stds.min()),
            "max": float(stds.max()),
            "mean_times_sqrt_dim": float(stds.mean()) * math.sqrt(embeddings.shape[1]),
        },
        "effective_rank": effective_rank(embeddings),
        "uniformity": uniformity(embeddings, first, second),
    }
    if labels is None:
        return summary, {"all": cosines}
    same = labels[first] == labels[second]
    summary |= {
        "num_positive_pairs": int(same.sum()),
        "num_negative_pairs": int((~same).sum()),
        "positive_fraction_above_0.99": fraction_above(cosines[same]),
        "negative_fraction_above_0.99": fraction_above(cosines[~same]),
        "positive_mean_cosine": float(cosines[same].mean()) if same.any() else math.nan,
        "negative_mean_cosine": float(cosines[~same].mean()) if (~same).any() else math.nan,
        "alignment": alignment(embeddings, first[same], second[same]),
    }
    return summary, {"positive": cosines[same], "negative": cosines[~same]}


def draw_pair_histograms(axis, similarities: dict[str, Tensor]) -> None:
    """Draw the pair-cosine histograms of :func:`diagnose` on ``axis``.

    Density histograms of the ``positive`` / ``negative`` (or ``all``) pair cosines from
    :func:`diagnose` on ``axis``, with the 0.99 collapse threshold dotted.
    """
    colours = {"positive": "tab:green", "negative": "tab:red", "all": "tab:blue"}
    for name, values in similarities.items():
        if values.numel():
            axis.hist(values.numpy(), bins=60, range=(-1, 1), alpha=0.6, density=True,
                      color=colours[name], label=f"{name} pairs ({values.numel()})")  # fmt: skip
    axis.axvline(COLLAPSE_THRESHOLD, color="k", linestyle=":", linewidth=1)


def plot_diagnostics(path, summary: dict, similarities: dict[str, Tensor], stds: Tensor) -> None:
    """diagnostics.png: pair-cosine histograms (left) and sorted per-dimension std (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastap_lab import io

    fig, (hist, bars) = plt.subplots(1, 2, figsize=(11, 4))
    draw_pair_histograms(hist, similarities)
    hist.set(xlabel="cosine similarity", ylabel="density",
             title=f"pairs > 0.99: {summary['fraction_pairs_above_0.99']:.1%}")  # fmt: skip
    hist.legend(fontsize=8)
    ordered = stds.sort(descending=True).values.numpy()
    bars.plot(ordered, color="tab:blue")
    bars.axhline(1 / math.sqrt(len(ordered)), color="k", linestyle=":", label="1/sqrt(D)")
    bars.set(xlabel="dimension (sorted)", ylabel="std of unit embeddings",
             title=f"effective rank {summary['effective_rank']:.1f} of {len(ordered)}")  # fmt: skip
    bars.legend(fontsize=8)
    fig.tight_layout()
    io.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
