"""W&B around a training run: identity, config, evaluation media, finishing.

Run identity (id, name, group, tags), the config, the post-train evaluation's images and
per-query table, and a clean finish between multirun jobs.

Only used with ``logger=wandb``. The run id is stored in ``<run>/wandb_id.txt``; a run resumed
with ``ckpt_path=<old run>/checkpoints/last.ckpt`` reads the old run's id and continues that
W&B run (``resume="allow"``). Offline (no credentials / network) everything lands under
``<run>/wandb/offline-run-*`` for ``wandb sync`` later.
"""

from __future__ import annotations

import csv
import logging
import secrets
import string
from pathlib import Path

from omegaconf import DictConfig, open_dict

from fastap_lab import io

log = logging.getLogger(__name__)
WANDB_ID_FILE = "wandb_id.txt"


def uses_wandb(cfg: DictConfig) -> bool:
    """Whether the config logs to W&B."""
    return bool((cfg.get("logger") or {}).get("wandb"))


def hydra_job_info() -> dict:
    """``{multirun, overrides, sweep}`` of the running Hydra job (empty outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return {"multirun": False, "overrides": "", "sweep": ""}
    hydra = HydraConfig.get()
    multirun = hydra.mode == RunMode.MULTIRUN
    return {
        "multirun": multirun,
        "overrides": hydra.job.override_dirname or "",
        "sweep": Path(str(hydra.sweep.dir)).name if multirun else "",
    }


def resumed_run_id(ckpt_path: str | None) -> str | None:
    """The W&B id of the run that wrote ``ckpt_path``, or None.

    The W&B id stored by the run that wrote ``ckpt_path`` (``<run>/checkpoints/x.ckpt`` or
    the run folder itself), or None.
    """
    if not ckpt_path:
        return None
    path = Path(ckpt_path).resolve()
    stored = (path if path.is_dir() else path.parent.parent) / WANDB_ID_FILE
    if not stored.is_file():
        return None
    return stored.read_text().strip() or None


def new_run_id(length: int = 8) -> str:
    """A random W&B run id (lower-case letters and digits, as W&B makes them)."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def run_identity(cfg: DictConfig, job: dict) -> dict:
    """Id / name / group / tags for ``wandb.init``; values set in ``logger.wandb`` win."""
    experiment = str(cfg.experiment_name)
    group = f"{experiment}-{job['sweep']}" if job["multirun"] else experiment
    tags = [*map(str, cfg.get("tags") or []), experiment, *(["sweep"] if job["multirun"] else [])]
    return {
        "id": resumed_run_id(cfg.get("ckpt_path")) or new_run_id(),
        "name": job["overrides"] or experiment,
        "group": group,
        "tags": list(dict.fromkeys(tags)),
    }


def prepare_wandb_logger(cfg: DictConfig, run_dir: Path) -> None:
    """Fill the unset identity fields of ``cfg.logger.wandb`` and write ``<run>/wandb_id.txt``."""
    if not uses_wandb(cfg):
        return
    derived = run_identity(cfg, hydra_job_info())
    settings = cfg.logger.wandb
    with open_dict(settings):
        for key, value in derived.items():
            if not settings.get(key):
                settings[key] = value
        settings.resume = "allow"  # a new id starts a run; a stored one continues it
    io.write_text(run_dir / WANDB_ID_FILE, f"{settings.id}\n")
    log.info("W&B run %s (group %s, name %s)", settings.id, settings.group, settings.name)


def find_wandb_logger(trainer):
    """The trainer's WandbLogger, or None."""
    from lightning.pytorch.loggers import WandbLogger

    return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)


def log_config(trainer, config: dict) -> None:
    """The effective (resolved) config as the W&B run config."""
    logger = find_wandb_logger(trainer)
    if logger is not None:
        logger.experiment.config.update(config, allow_val_change=True)


def per_query_table(path: Path):
    """``per_query.csv`` as a ``wandb.Table`` (numbers as floats, names as text)."""
    import wandb

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    return wandb.Table(columns=header, data=[[_number_or_text(v) for v in row] for row in body])


def _number_or_text(value: str):
    if value == "":
        return None  # e.g. the AP of a query without relevant frames
    try:
        return float(value)
    except ValueError:
        return value


def log_evaluation(trainer, inference_dir: Path, record: dict) -> None:
    """Images (retrieval grid, diagnostics), the per-query table and the summary metrics."""
    logger = find_wandb_logger(trainer)
    if logger is None:
        return
    import wandb

    payload = {
        f"inference/{name.removesuffix('.png')}": wandb.Image(str(inference_dir / name))
        for name in ("retrieval_grid.png", "diagnostics.png")
        if (inference_dir / name).is_file()
    }
    if (inference_dir / "per_query.csv").is_file():
        payload["inference/per_query"] = per_query_table(inference_dir / "per_query.csv")
    logger.experiment.log(payload)
    metrics = record.get("metrics") or {}
    numbers = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    logger.experiment.summary.update({f"inference/{k}": v for k, v in numbers.items()})


def finish_wandb(failed: bool) -> None:
    """End the active W&B run, so the next multirun job opens its own run."""
    import wandb

    if wandb.run is not None:
        wandb.finish(exit_code=1 if failed else 0)
