"""The guard against "no better than pixels": every evaluation also scores raw pixels.

Raw pixels (the ``baseline=pixels`` baseline: downsampled, per-pixel standardised frames) are
scored on the same frames, split and exclusion window as the model, and the verdict
(``beats_pixels``, ``margin`` = model mAP − pixels mAP) goes into metrics.json under
``pixel_baseline``; the console, report.md and the sweep summary print :func:`verdict_line`.
A learned embedding that does not beat its own input is not learning the breathing phase.

Pure: no Lightning, no Hydra.
"""

from __future__ import annotations

import math

PIXEL_SIZE = 32  # side length of the pixel baseline (as conf/model/pixels.yaml's default)
GUARD_METRICS = ("mAP", "precision@1", "precision@10")


def pixel_record(
    model_metrics: dict | None,
    pixel_metrics: dict | None,
    size: int | None,
    positives_in_tables: dict | None = None,
) -> dict | None:
    """metrics.json's ``pixel_baseline``: the pixel scores and the verdict; None without labels.

    Args:
        model_metrics: ``summarize`` output (``mAP``, ``precision@k``, ...) of the model.
        pixel_metrics: the same of raw pixels on the same evaluation set.
        size: the pixel baseline's side length.
        positives_in_tables: per query, the pixels' positives in the top K (tables' counts).
    """
    if not model_metrics or not pixel_metrics:
        return None
    pixels = {name: pixel_metrics[name] for name in pixel_metrics if _is_metric(name)}
    margin = float(model_metrics["mAP"]) - float(pixel_metrics["mAP"])
    return {
        "pixels": pixels,
        "size": size,
        "beats_pixels": bool(math.isfinite(margin) and margin > 0),
        "margin": margin,
        "positives_in_tables": positives_in_tables or {},
    }


def _is_metric(name: str) -> bool:
    return name in ("mAP", "r_precision", "map@r") or name.startswith(("precision@", "recall@"))


def verdict_line(metrics: dict | None, guard: dict | None) -> str | None:
    """The console line of the raw-pixel guard's verdict, or None.

    ``does NOT beat raw pixels: mAP 0.4900 vs 0.5100 (-0.0200)`` or ``beats raw pixels: …``;
    None when there is no guard (switched off, no labels, or the model is raw pixels).
    """
    if not metrics or not guard:
        return None
    ours, theirs = float(metrics["mAP"]), float(guard["pixels"]["mAP"])
    head = "beats raw pixels" if guard["beats_pixels"] else "does NOT beat raw pixels"
    line = f"{head}: mAP {ours:.4f} vs {theirs:.4f} ({guard['margin']:+.4f})"
    extra = [
        f"P@{name.split('@')[1]} {float(metrics[name]):.4f} vs {float(guard['pixels'][name]):.4f}"
        for name in GUARD_METRICS[1:]
        if name in metrics and name in guard["pixels"]
    ]
    return line + (f"; {', '.join(extra)}" if extra else "")


def summary_columns(record: dict) -> dict:
    """Sweep-summary cells of one job's metrics.json: pixels mAP, margin, beats_pixels."""
    guard = record.get("pixel_baseline") or {}
    if not guard:
        return {"pixels_mAP": None, "margin_vs_pixels": None, "beats_pixels": None}
    return {
        "pixels_mAP": guard["pixels"].get("mAP"),
        "margin_vs_pixels": guard.get("margin"),
        "beats_pixels": guard.get("beats_pixels"),
    }
