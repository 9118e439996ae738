"""Evaluate a run folder from Python, as ``python -m fastap_lab.evaluate ckpt_path=<run>`` does."""

from __future__ import annotations

from pathlib import Path


def evaluate_run(run_dir: Path, overrides: list[str] = ()) -> Path:
    """Evaluate ``run_dir``'s last checkpoint into a new ``run_dir/inference[-N]``; return it."""
    # heavy (torch, Lightning, Hydra): only when needed
    from fastap_lab.evaluation_task import evaluate_checkpoint
    from fastap_lab.runs import RunFolder

    evaluate_checkpoint(Path(run_dir), overrides)
    return RunFolder(run_dir).newest_evaluation
