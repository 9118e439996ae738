"""Evaluate a run folder from Python, as ``python -m fastap_lab.evaluate ckpt_path=<run>`` does."""

from __future__ import annotations

from pathlib import Path

from fastap_lab.compose import compose_config


def evaluate_run(run_dir: Path, overrides: list[str] = ()) -> Path:
    """Evaluate ``run_dir``'s last checkpoint into a new ``run_dir/inference[-N]``; return it."""
    from fastap_lab.evaluation_task import evaluate  # heavy (torch, Lightning): only when needed

    base = [f"ckpt_path={run_dir}", f"paths.output_dir={run_dir}"]
    cfg = compose_config("evaluate", [*base, *overrides])
    evaluate(cfg, [*base, *overrides])
    from fastap_lab.runs import RunFolder

    return RunFolder(run_dir).newest_evaluation
