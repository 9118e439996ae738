"""``python -m fastap_lab.train [+experiment=NAME] [overrides...]``: train one stage.

Leaves a run folder ``outputs/<experiment_name>/<time>/`` with ``config.yaml`` (the effective,
resolved config), ``metrics.csv`` (per epoch), ``checkpoints/last.ckpt``, Hydra's ``.hydra/``
and, after training (``eval_after_train: true``), the retrieval evaluation of the final
checkpoint in ``inference/`` (as ``python -m fastap_lab.evaluate ckpt_path=<run>`` writes it)
and ``result.json`` (the optimised metric, which ``train`` returns for Hydra sweepers), then, last,
``FINISHED`` (:mod:`fastap_lab.runs`): only a run with that marker counts as finished.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import hydra
import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from fastap_lab import io, runs
from fastap_lab.build import build_datamodule, build_module, build_trainer
from fastap_lab.cli import run_task
from fastap_lab.errors import ConfigError
from fastap_lab.lit import wandb_media
from fastap_lab.validate import check_train_config

log = logging.getLogger(__name__)
# Hydra creates the run folder (with .hydra/) before the CSV logger sees it; nothing is deleted.
warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
# FastAP's frozen backbone / projector are in eval mode on purpose (BatchNorm must not drift).
warnings.filterwarnings(
    "ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training"
)
FALLBACK_METRIC = "inference/mAP"


def require_complete(cfg: DictConfig) -> None:
    """Name every mandatory value (``???``) left unset, before anything runs."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} must be set (it is ??? in the config); e.g. data=frames"
            " data.root=/path/to/folder, or data=phantom for the embedded demo data"
        )


def train(cfg: DictConfig) -> float | None:
    """Train, evaluate the final checkpoint and return the optimized metric.

    Fit ``cfg.model`` on ``cfg.data``, evaluate the final checkpoint (``eval_after_train``)
    and return the value of ``cfg.optimized_metric`` (see :func:`optimized_value`).
    """
    require_complete(cfg)
    check_train_config(cfg)
    L.seed_everything(cfg.seed, workers=True)
    run_dir = Path(cfg.paths.output_dir)
    wandb_media.prepare_wandb_logger(cfg, run_dir)
    effective = OmegaConf.to_container(cfg, resolve=True)
    if rank_zero_only.rank == 0:  # every DDP rank runs this function; one writes the config
        io.write_text(run_dir / "config.yaml", OmegaConf.to_yaml(effective))
    datamodule = build_datamodule(cfg)
    module = build_module(cfg)
    module.run_config = effective
    trainer = build_trainer(cfg)
    failed = True
    try:
        wandb_media.log_config(trainer, effective)
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        record = evaluate_after_training(cfg, trainer)
        value = optimized_value(cfg, trainer, record, run_dir)
        failed = False
    finally:
        if wandb_media.uses_wandb(cfg):
            wandb_media.finish_wandb(failed)
    mark_if_finished(cfg, trainer, run_dir)  # last: after W&B has written its files too
    log.info("run folder: %s", run_dir)
    return value


def mark_if_finished(cfg: DictConfig, trainer: L.Trainer, run_dir: Path) -> None:
    """Write ``<run>/FINISHED`` (rank 0), the last file of a run whose fit ran to its end."""
    if not trainer.is_global_zero or trainer.interrupted:
        return
    runs.mark_finished(run_dir, trainer.current_epoch, cfg.trainer.get("max_epochs"))


def evaluate_after_training(cfg: DictConfig, trainer: L.Trainer) -> dict | None:
    """Evaluate the run's last checkpoint into ``<run>/inference/``.

    Evaluate ``checkpoints/last.ckpt`` into ``<run>/inference/`` (rank 0 only); the record of
    metrics.json, or None when switched off or when no checkpoint was written.
    """
    if not cfg.get("eval_after_train", True) or not trainer.is_global_zero:
        return None
    checkpoint = Path(cfg.paths.checkpoint_dir) / "last.ckpt"
    if not checkpoint.is_file():
        log.info("no %s (checkpointing is off): post-train evaluation skipped", checkpoint)
        return None
    from fastap_lab.evaluation_task import evaluate_checkpoint

    run_dir = Path(cfg.paths.output_dir)
    before = set(run_dir.glob("inference*"))
    overrides = list(cfg.get("eval_overrides") or [])
    record = evaluate_checkpoint(checkpoint, overrides, cfg.paths.cache_dir, log)
    written = sorted(set(run_dir.glob("inference*")) - before)
    if written:
        wandb_media.log_evaluation(trainer, written[-1], record)
    return record


def optimized_value(
    cfg: DictConfig, trainer: L.Trainer, record: dict | None, run_dir: Path
) -> float | None:
    """The value of ``cfg.optimized_metric`` after training, or None.

    ``cfg.optimized_metric`` from the metrics logged in training (e.g. ``val/mAP`` of the
    last epoch, ``train/loss``) or from the post-train evaluation (``inference/mAP``,
    ``inference/precision@10``, …). Falls back to ``inference/mAP``; None when neither exists
    (no labels) or it is not finite — Hydra's Optuna sweeper then marks the trial failed (it
    cannot take NaN). Written to ``<run>/result.json``.
    """
    name = str(cfg.get("optimized_metric") or "val/mAP")
    available = {key: float(value) for key, value in trainer.callback_metrics.items()}
    metrics = (record or {}).get("metrics") or {}
    available |= {f"inference/{k}": float(v) for k, v in metrics.items() if _is_number(v)}
    source = name if name in available else FALLBACK_METRIC
    if source != name:
        log.warning("optimized_metric=%s was not logged; returning %s instead", name, source)
    value = _finite_or_none(available.get(source))
    result = {"optimized_metric": name, "source": source, "value": value}
    io.write_json(run_dir / "result.json", result)
    return value


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Entry point (Hydra): run :func:`train`, user errors as one ``error:`` line."""
    return run_task(train, cfg)


if __name__ == "__main__":
    main()
