"""Embedding-distribution comparisons between runs (notebook 01)."""

from __future__ import annotations

import math

import torch

from fastap_lab.analysis.runs import RunEmbeddings
from fastap_lab.evaluation.diagnostics import diagnose


def evaluated_part(run: RunEmbeddings) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(embeddings [M, D], labels [M] or None) of the frames the run's metrics were computed on."""
    labels = None if run.labels is None else run.labels[run.evaluated]
    return run.embeddings[run.evaluated], labels


def spread_rows(runs: list[RunEmbeddings], max_pairs: int = 200_000) -> list[dict]:
    """One row per run: held-out mAP / P@10 beside the spread of its evaluated embeddings.

    ``std·√D`` is the mean per-dimension std times sqrt(D): ~1 for unit vectors spread over
    the sphere, ~0 for a collapsed space; ``pairs>0.99`` is the reference report's symptom.
    """
    rows = []
    for run in runs:
        embeddings, labels = evaluated_part(run)
        summary, _ = diagnose(embeddings, labels, max_pairs=max_pairs)
        rows.append({
            "run": run.name,
            "frames": summary["num_frames"],
            "mAP": run.metrics.get("mAP", math.nan),
            "P@10": run.metrics.get("precision@10", math.nan),
            "mean cos": summary["mean_cosine"],
            "pos cos": summary.get("positive_mean_cosine", math.nan),
            "neg cos": summary.get("negative_mean_cosine", math.nan),
            "pairs>0.99": summary["fraction_pairs_above_0.99"],
            "std·√D": summary["dimension_std"]["mean_times_sqrt_dim"],
            "eff. rank": summary["effective_rank"],
            "dim": summary["embedding_dim"],
        })  # fmt: skip
    return rows


def project_2d(embeddings: torch.Tensor) -> torch.Tensor:
    """PCA of [N, D] embeddings onto their first two principal axes: float64 [N, 2].

    Deterministic (full SVD of the centred matrix; each axis' sign fixed so that its largest
    loading is positive), so two runs of the notebook draw the same picture.
    """
    x = embeddings.double()
    x = x - x.mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    axes = vh[:2]
    signs = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))
    projected = x @ (axes * signs).T
    if projected.shape[1] < 2:  # D == 1: a flat second axis
        projected = torch.cat([projected, torch.zeros_like(projected)], dim=1)
    return projected
