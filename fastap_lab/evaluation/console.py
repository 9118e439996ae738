"""What an evaluation says on the console: the opening lines, then the summary of its record.

Log lines only (the files are :mod:`fastap_lab.evaluation.run`'s); pure: no Lightning, no Hydra.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastap_lab.evaluation import guard
from fastap_lab.evaluation.embed import Embedder

log = logging.getLogger(__name__)


def describe(embedder: Embedder) -> str:
    """The model evaluated, in words: ``<stage> checkpoint <path>`` or ``the <kind> baseline``."""
    if embedder.kind == "checkpoint":
        return f"{embedder.stage} checkpoint {embedder.checkpoint}"
    return f"the {embedder.kind} baseline"


def log_opening(embedder: Embedder, frames, out: Path, data_line: str) -> None:
    """What is evaluated on which frames into which folder, then the data settings' line."""
    log.info(
        "evaluating %s on %d frames (%s) -> %s", describe(embedder), len(frames), frames.root, out
    )
    log.info("%s", data_line)


def log_summary(record: dict, out: Path) -> None:
    """The notes, the metrics (or why there are none), the raw-pixel verdict and the folder."""
    for note in record["notes"]:
        log.warning("note: %s", note)
    metrics = record["metrics"]
    if metrics is None:
        log.warning(
            "metrics skipped: the data has no labels; embeddings, tables, grid and diagnostics"
            " are in %s",
            out,
        )
        return
    if record["metrics_warning"]:
        log.warning("metrics meaningless: %s", record["metrics_warning"])
    ranked = ", ".join(f"P@{k} {metrics[f'precision@{k}']:.3f}" for k in metrics["ks"])
    log.info(
        "%s split, %d queries (%d without relevant frames), exclusion window %g (%s): mAP %.4f, %s",
        record["split"], metrics["num_queries"], metrics["num_queries_without_relevant"],
        record["exclusion_window"], record["exclusion_window_source"], metrics["mAP"], ranked,
    )  # fmt: skip
    verdict = guard.verdict_line(metrics, record.get("pixel_baseline"))
    if verdict:
        (log.info if record["pixel_baseline"]["beats_pixels"] else log.warning)("%s", verdict)
    log.info("outputs: %s", out)
