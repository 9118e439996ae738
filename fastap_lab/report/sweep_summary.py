"""The summary of a multirun: ``sweep_summary.md`` + ``sweep_summary.csv`` in the sweep folder.

One row per job — job number, overrides, status (ok / failed + the one-line error), the
optimised metric, mAP, P@K, R@K of the post-train evaluation, the best epoch of ``val/mAP`` in
``metrics.csv``, run folder — sorted by the optimised metric (best first, failed jobs last).
Built from the files each job left in its folder (``.hydra/``, ``result.json``, the newest
``inference[-N]/metrics.json``, ``metrics.csv``, ``error.txt``, ``FINISHED``; read through
:mod:`fastap_lab.runs`), so it works with every launcher (sequential, joblib, SLURM). Written at
the end of a multirun by the Hydra callback :class:`fastap_lab.sweep.SweepSummary`.
"""

from __future__ import annotations

import csv
import io as text_io
import json
import math
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from fastap_lab import io
from fastap_lab.evaluation import guard
from fastap_lab.runs import EVALUATION_RECORD, RunFolder, read_epochs

SUMMARY_NAME = "sweep_summary"


def read_json(path: Path) -> dict:
    """The JSON in ``path``, or an empty dict when the file is absent."""
    return json.loads(path.read_text()) if path.is_file() else {}


def best_epoch(metrics_csv: Path, column: str = "val/mAP") -> tuple[int | None, float | None]:
    """(epoch, value) of the highest ``column`` in a Lightning ``metrics.csv``; (None, None)."""
    epochs = read_epochs(metrics_csv, require=column)
    if not epochs:
        return None, None
    best = max(epochs, key=lambda e: e[column])  # first of equal values: the earliest
    return best["epoch"], best[column]


def job_status(job_dir: Path) -> tuple[str, str]:
    """("ok" | "failed", the one-line error or "")."""
    run = RunFolder(job_dir)
    error = run.error
    if error is not None:
        return "failed", error
    if not run.finished:
        return "failed", "unfinished: no FINISHED marker (killed, interrupted, or still running)"
    return "ok", ""


def job_row(job_dir: Path) -> dict[str, Any]:
    """The summary row of one job folder."""
    hydra_cfg = OmegaConf.load(job_dir / ".hydra" / "hydra.yaml").hydra
    run = RunFolder(job_dir)
    result = run.result or {}
    status, error = job_status(job_dir)
    evaluation = run.newest_evaluation  # the newest inference[-N]/, as the report reads it
    record = {} if evaluation is None else read_json(evaluation / EVALUATION_RECORD)
    metrics = record.get("metrics") or {}
    epoch, best_value = best_epoch(run.metrics_csv)
    row = {
        "job": int(hydra_cfg.job.num),
        "overrides": " ".join(hydra_cfg.overrides.task),
        "status": status,
        "error": error,
        "optimized_metric": result.get("optimized_metric", ""),
        "value": result.get("value"),
        "mAP": metrics.get("mAP"),
    }
    for kind in ("precision", "recall"):
        row |= {f"{kind}@{k}": metrics.get(f"{kind}@{k}") for k in metrics.get("ks", [])}
    row |= guard.summary_columns(record)  # raw pixels on the same frames (eval.pixel_baseline)
    return row | {"best_epoch": epoch, "best_val/mAP": best_value, "run": str(job_dir.resolve())}


def sort_key(row: dict, maximize: bool) -> tuple:
    """Failed jobs and jobs without a value last; then best value first; then job number."""
    value = row["value"]
    missing = row["status"] != "ok" or value is None or math.isnan(value)
    signed = 0.0 if missing else (-value if maximize else value)
    return missing, signed, row["job"]


def collect_rows(sweep_dir: Path, maximize: bool = True) -> list[dict]:
    """Rows of every job folder (one holding ``.hydra/hydra.yaml``) under ``sweep_dir``."""
    job_dirs = sorted(p.parent.parent for p in sweep_dir.glob("**/.hydra/hydra.yaml"))
    rows = [job_row(d) for d in job_dirs]
    return sorted(rows, key=lambda row: sort_key(row, maximize))


def columns_of(rows: list[dict]) -> list[str]:
    """Union of the row keys in first-seen order (jobs may have different K lists)."""
    return list(dict.fromkeys(key for row in rows for key in row))


def format_cell(value: Any) -> str:
    """A summary table cell: empty for None, 4 decimals for a float."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def summary_csv(rows: list[dict]) -> str:
    """sweep_summary.csv text of ``rows``."""
    buffer = text_io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns_of(rows), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def summary_markdown(rows: list[dict], sweep_dir: Path, maximize: bool) -> str:
    """sweep_summary.md: one row per job, in the order of ``rows``, failures counted."""
    columns = [c for c in columns_of(rows) if c != "run"] + ["run"]
    direction = "highest" if maximize else "lowest"
    metric = next((r["optimized_metric"] for r in rows if r["optimized_metric"]), "?")
    failed = sum(r["status"] != "ok" for r in rows)
    lines = [
        f"# Sweep summary: {sweep_dir}",
        "",
        f"{len(rows)} jobs, {failed} failed; sorted by {metric} ({direction} first), failed last.",
        "",
        *_pixel_lines(rows),
        "| " + " | ".join(columns) + " |",
        "|" + " --- |" * len(columns),
    ]
    for row in rows:
        run = Path(row["run"]).name if row.get("run") else ""
        cells = [format_cell(row.get(c)) if c != "run" else run for c in columns]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _pixel_lines(rows: list[dict]) -> list[str]:
    """One line per job whose model does NOT beat raw pixels (its post-train evaluation)."""
    losing = [r for r in rows if r.get("beats_pixels") is False]
    return [
        f"- **job {r['job']} does NOT beat raw pixels: mAP {r['mAP']:.4f} vs"
        f" {r['pixels_mAP']:.4f}** ({r['margin_vs_pixels']:+.4f})"
        for r in losing
    ] + ([""] if losing else [])


def write_summary(sweep_dir: Path, maximize: bool = True) -> list[dict]:
    """Write ``sweep_summary.csv`` and ``.md`` into ``sweep_dir``; returns the sorted rows."""
    rows = collect_rows(sweep_dir, maximize)
    if rows:
        io.write_text(sweep_dir / f"{SUMMARY_NAME}.csv", summary_csv(rows))
        io.write_text(sweep_dir / f"{SUMMARY_NAME}.md", summary_markdown(rows, sweep_dir, maximize))
    return rows
