"""What an evaluation says on the console: the opening lines, then the summary of its record.

Lines as ``(level, text)``, logged by the command on its own logger (:func:`fastap_lab.cli.log_lines`),
so every command's console lines carry the command's name; the files are
:mod:`fastap_lab.evaluation.run`'s. Pure: no Lightning, no Hydra.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastap_lab.evaluation import guard
from fastap_lab.evaluation.embed import Embedder

Lines = list[tuple[int, str]]


def describe(embedder: Embedder) -> str:
    """The model evaluated, in words: ``<stage> checkpoint <path>`` or ``the <kind> baseline``."""
    if embedder.kind == "checkpoint":
        return f"{embedder.stage} checkpoint {embedder.checkpoint}"
    return f"the {embedder.kind} baseline"


def opening_lines(embedder: Embedder, frames, out: Path, data_line: str) -> Lines:
    """What is evaluated on which frames into which folder, then the data settings' line."""
    what = f"evaluating {describe(embedder)} on {len(frames)} frames ({frames.root}) -> {out}"
    return [(logging.INFO, what), (logging.INFO, data_line)]


def summary_lines(record: dict, out: Path) -> Lines:
    """The notes, the metrics (or why there are none), the raw-pixel verdict and the folder."""
    lines = [(logging.WARNING, f"note: {note}") for note in record["notes"]]
    metrics = record["metrics"]
    if metrics is None:
        lines.append((logging.WARNING, "metrics skipped: the data has no labels; embeddings,"
                      f" tables, grid and diagnostics are in {out}"))  # fmt: skip
        return lines
    if record["metrics_warning"]:
        lines.append((logging.WARNING, f"metrics meaningless: {record['metrics_warning']}"))
    ranked = ", ".join(f"P@{k} {metrics[f'precision@{k}']:.3f}" for k in metrics["ks"])
    lines.append((logging.INFO,
        f"{record['split']} split, {metrics['num_queries']} queries"
        f" ({metrics['num_queries_without_relevant']} without relevant frames), exclusion window"
        f" {record['exclusion_window']:g} ({record['exclusion_window_source']}):"
        f" mAP {metrics['mAP']:.4f}, {ranked}"))  # fmt: skip
    verdict = guard.verdict_line(metrics, record.get("pixel_baseline"))
    if verdict:
        beats = record["pixel_baseline"]["beats_pixels"]
        lines.append((logging.INFO if beats else logging.WARNING, verdict))
    lines.append((logging.INFO, f"outputs: {out}"))
    return lines
