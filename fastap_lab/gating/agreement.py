"""How well a gate agrees with the labels or displacement a data set carries.

Labels (precision / recall / F1 of the gated frames) and a ground-truth respiratory ``displacement`` (correlation of the trace
with closeness to the reference, and the displacement error of the gated frames).
"""

from __future__ import annotations

import numpy as np


def label_agreement(gated: np.ndarray, labels: np.ndarray, positive: int) -> dict:
    """Precision, recall, F1 of ``gated`` bool [N] against ``labels == positive`` (int [N])."""
    truth = labels == positive
    hits = int((gated & truth).sum())
    precision = hits / int(gated.sum()) if gated.any() else 0.0
    recall = hits / int(truth.sum()) if truth.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "positive_label": int(positive), "frames_positive": int(truth.sum()),
        "true_positives": hits, "precision": precision, "recall": recall, "f1": f1,
    }  # fmt: skip


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson r of two float [N]; None when either is constant."""
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / norm) if norm > 0 else None


def displacement_agreement(
    smoothed: np.ndarray, gated: np.ndarray, displacement: np.ndarray, reference: float
) -> dict:
    """The trace against the ground truth.

    Args:
        smoothed: float [N] smoothed score (higher = closer to the reference).
        gated: bool [N].
        displacement: float [N] ground-truth respiratory displacement.
        reference: the reference's displacement.

    Returns:
        ``abs_pearson_r`` of the score against closeness ``-|displacement - reference|``;
        ``error_mean`` / ``error_p95`` of ``|displacement - reference|`` over the gated frames, in
        displacement units and as a share of the breathing range (max - min displacement).
    """
    distance = np.abs(displacement - reference)
    r = pearson(smoothed, -distance)
    span = float(displacement.max() - displacement.min()) or 1.0
    record = {"reference_displacement": float(reference), "breathing_range": span,
              "pearson_r": r, "abs_pearson_r": None if r is None else abs(r)}  # fmt: skip
    if gated.any():
        mean, p95 = float(distance[gated].mean()), float(np.quantile(distance[gated], 0.95))
        record.update(error_mean=mean, error_p95=p95, error_mean_share=mean / span,
                      error_p95_share=p95 / span)  # fmt: skip
    return record
