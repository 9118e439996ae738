"""OmegaConf resolvers used by conf/ (registered on import of any entry point)."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


def linear_lr(base_lr: float, batch_size: int, reference_batch: int = 256) -> float:
    """The linear scaling rule ``lr = base_lr * batch_size / reference_batch`` (Goyal et al.)."""
    return float(base_lr) * int(batch_size) / int(reference_batch)


def wandb_offline() -> bool:
    """W&B runs offline unless credentials exist (WANDB_API_KEY or a netrc entry) and
    WANDB_MODE is not 'offline'/'disabled': never wait on a network that is not there."""
    mode = os.environ.get("WANDB_MODE", "")
    if mode in ("offline", "disabled", "dryrun"):
        return True
    if os.environ.get("WANDB_API_KEY"):
        return False
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return not (netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"))


def latest_checkpoint(experiment_name: str, outputs: str = "outputs") -> str:
    """``outputs/<experiment_name>/<newest run>/checkpoints/last.ckpt`` (run folders sort by time).

    Chains stages: ``model.pretrained: ${latest_checkpoint:simsiam100}``. The saved config
    records the resolved path, so the run says which checkpoint it started from.
    """
    from fastap_lab.errors import ConfigError

    runs = sorted(Path(outputs).glob(f"{experiment_name}/*/checkpoints/last.ckpt"))
    if not runs:
        raise ConfigError(
            f"model.pretrained=${{latest_checkpoint:{experiment_name}}}: no finished run under"
            f" {Path(outputs) / experiment_name}/; run `python -m fastap_lab.train"
            f" +experiment={experiment_name}` first, or set model.pretrained=/path/to/run"
        )
    return str(runs[-1].resolve())


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("linear_lr", linear_lr, replace=True)
    OmegaConf.register_new_resolver("wandb_offline", wandb_offline, replace=True)
    OmegaConf.register_new_resolver("latest_checkpoint", latest_checkpoint, replace=True)


register_resolvers()
