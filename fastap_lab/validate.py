"""Config values checked right after composition, before anything is built or trained.

These are the values whose owners (torch's optimisers, Lightning's Trainer, the retrieval
callback that runs after the first epoch) would otherwise fail late or with a traceback that
does not name the config field. Values checked by the constructors that receive them (loss,
augment, data module, backbone) are not repeated here.
"""

from __future__ import annotations

import math

import torch
from omegaconf import DictConfig

from fastap_lab.data.loading import check_data_keys
from fastap_lab.errors import ConfigError

GPU_ACCELERATORS = ("gpu", "cuda")


def _number(value) -> float | None:
    """``value`` as a float when it is a real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def check_at_least(field: str, value, low: float, *, strict: bool, hint: str) -> None:
    """``value`` must be a finite number ``> low`` (strict) or ``>= low``; else one line."""
    number = _number(value)
    sign = ">" if strict else ">="
    if number is None or not math.isfinite(number) or (number <= low if strict else number < low):
        raise ConfigError(f"{field}={value!r}: must be a number {sign} {low:g}; {hint}")


def check_optimizer(optimizer: DictConfig | None) -> None:
    """Raise ConfigError for an optimizer LR, weight decay or momentum out of range."""
    if not optimizer:
        return
    check_at_least("optimizer.lr", optimizer.get("lr"), 0, strict=True, hint="e.g. 0.05 (SGD)")
    for name in ("weight_decay", "momentum"):
        if optimizer.get(name) is not None:
            check_at_least(f"optimizer.{name}", optimizer[name], 0, strict=False, hint="e.g. 0")


def check_trainer(trainer: DictConfig) -> None:
    """Raise ConfigError for a trainer setting out of range (max_epochs, ...)."""
    epochs = trainer.get("max_epochs")
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool)):
        raise ConfigError(f"trainer.max_epochs={epochs!r}: must be an integer >= 1, e.g. 10")
    if epochs is not None and epochs < 1 and epochs != -1:  # -1: Lightning's "no limit"
        raise ConfigError(
            f"trainer.max_epochs={epochs}: no epoch would run, so there would be no checkpoint"
            " and no evaluation; give trainer.max_epochs >= 1"
        )
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator in GPU_ACCELERATORS and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={accelerator} (trainer=gpu / ddp on GPUs): no CUDA device on"
            " this machine; use trainer=cpu, or the default trainer (accelerator=auto picks"
            " the CPU), or run where `nvidia-smi` shows a GPU"
        )


def check_data(data) -> None:
    """Keys that are no data setting, and values used only after the first epoch (split_gap)."""
    if data:
        check_data_keys(data)
    gap = data.get("split_gap") if data else None
    if gap is not None:
        check_at_least(
            "data.split_gap", gap, 0, strict=False, hint="0 keeps neighbouring frames, e.g. 2.0"
        )


# Each training stage's module and the loss it is written for (conf/model/*, conf/loss/*).
STAGE_LOSSES = {
    "fastap_lab.lit.fastap.FastAPModule": (
        "fastap",
        "fastap_lab.losses.objectives.FastAPObjective",
    ),
    "fastap_lab.lit.simsiam.SimSiamModule": ("simsiam", "fastap_lab.losses.simsiam.simsiam_loss"),
}


def check_model_and_loss(model: DictConfig | None, loss: DictConfig | None) -> None:
    """Raise ConfigError when a stage's model comes with another stage's loss.

    A stage's model with another stage's loss (e.g. ``model=fastap`` alone keeps the default
    ``loss=simsiam``) is one line naming the fix, not an error deep inside the module.
    """
    if model is None or loss is None or model.get("_target_") not in STAGE_LOSSES:
        return
    stage, expected = STAGE_LOSSES[model._target_]
    if loss.get("_target_") != expected:
        other = next((s for s, t in STAGE_LOSSES.values() if t == loss.get("_target_")), None)
        raise ConfigError(
            f"model={stage} with loss={other or loss.get('_target_')}: the {stage} stage trains"
            f" with its own loss; add loss={stage} (or use +experiment="
            f"{'fastap10' if stage == 'fastap' else 'simsiam100'}, which sets both)"
        )


def check_train_config(cfg: DictConfig) -> None:
    """Every check above on a composed training config (interpolations resolved on access)."""
    check_model_and_loss(cfg.get("model"), cfg.get("loss"))
    check_optimizer(cfg.get("optimizer"))
    check_trainer(cfg.trainer)
    check_data(cfg.get("data"))
