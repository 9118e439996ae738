"""Evaluate a run folder from Python, as ``python -m fastap_lab.evaluate ckpt_path=<run>`` does."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir

from fastap_lab.evaluation.embed import CONF_DIR


def evaluate_run(run_dir: Path, overrides: list[str] = ()) -> Path:
    """Evaluate ``run_dir``'s last checkpoint into a new ``run_dir/inference[-N]``; return it."""
    from fastap_lab.evaluate import evaluate  # heavy (torch, Lightning): only when needed

    base = [f"ckpt_path={run_dir}", f"paths.output_dir={run_dir}"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("evaluate", overrides=[*base, *overrides])
    evaluate(cfg, [*base, *overrides])
    from fastap_lab.report.collect import newest_inference

    return newest_inference(run_dir)
