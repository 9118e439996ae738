"""OmegaConf resolvers used by conf/ (registered on import of any entry point)."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


def linear_lr(base_lr: float, batch_size: int, reference_batch: int = 256) -> float:
    """The linear scaling rule ``lr = base_lr * batch_size / reference_batch`` (Goyal et al.)."""
    return float(base_lr) * int(batch_size) / int(reference_batch)


def wandb_offline() -> bool:
    """Whether W&B runs offline: yes unless credentials exist and WANDB_MODE allows it.

    W&B runs offline unless credentials exist (WANDB_API_KEY or a netrc entry) and
    WANDB_MODE is not 'offline'/'disabled': never wait on a network that is not there.
    """
    mode = os.environ.get("WANDB_MODE", "")
    if mode in ("offline", "disabled", "dryrun"):
        return True
    if os.environ.get("WANDB_API_KEY"):
        return False
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return not (netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"))


def latest_checkpoint(experiment_name: str, outputs: str = "outputs") -> str:
    """``outputs/<experiment_name>/<newest finished run>/checkpoints/last.ckpt``.

    Chains stages: ``model.pretrained: ${latest_checkpoint:simsiam100}``. Run folders sort by
    time; only runs with the ``FINISHED`` marker (:mod:`fastap_lab.runs`) count, so an
    interrupted or still-running run is never chained from. The saved config records the
    resolved path, so the run says which checkpoint it started from.
    """
    from fastap_lab.errors import ConfigError
    from fastap_lab.runs import run_folders

    folder = Path(outputs) / experiment_name
    runs = [run for run in run_folders(folder) if run.checkpoint(("last.ckpt",))]
    finished = [run for run in runs if run.finished]
    if finished:
        return str(finished[-1].checkpoint(("last.ckpt",)).resolve())
    field = f"model.pretrained=${{latest_checkpoint:{experiment_name}}}"
    fix = (
        f"run `python -m fastap_lab.train +experiment={experiment_name}` to the end (or resume"
        " one with ckpt_path=<run>), or set model.pretrained=/path/to/run"
    )
    if runs:
        raise ConfigError(
            f"{field}: no finished run under {folder}/, only {len(runs)} unfinished one(s)"
            f" (interrupted or still training; no FINISHED marker), newest {runs[-1].name}; {fix}"
        )
    raise ConfigError(f"{field}: no finished run under {folder}/; {fix}")


def register_resolvers() -> None:
    """Register the project's OmegaConf resolvers (``linear_lr``, ``wandb_offline``, ...)."""
    OmegaConf.register_new_resolver("linear_lr", linear_lr, replace=True)
    OmegaConf.register_new_resolver("wandb_offline", wandb_offline, replace=True)
    OmegaConf.register_new_resolver("latest_checkpoint", latest_checkpoint, replace=True)


register_resolvers()
