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


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("linear_lr", linear_lr, replace=True)
    OmegaConf.register_new_resolver("wandb_offline", wandb_offline, replace=True)


register_resolvers()
