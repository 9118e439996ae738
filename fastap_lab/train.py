"""``python -m fastap_lab.train [+experiment=NAME] [overrides...]``: train one stage.

Leaves a run folder ``outputs/<experiment_name>/<time>/`` with ``config.yaml`` (the effective,
resolved config), ``metrics.csv`` (per epoch), ``checkpoints/last.ckpt`` and Hydra's ``.hydra/``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from fastap_lab import io
from fastap_lab.build import build_datamodule, build_module, build_trainer
from fastap_lab.cli import run_task
from fastap_lab.errors import ConfigError

log = logging.getLogger(__name__)
# Hydra creates the run folder (with .hydra/) before the CSV logger sees it; nothing is deleted.
warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")


def require_complete(cfg: DictConfig) -> None:
    """Name every mandatory value (``???``) left unset, before anything runs."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} must be set (it is ??? in the config); e.g. data=frames"
            " data.root=/path/to/folder, or data=phantom for the embedded demo data"
        )


def train(cfg: DictConfig) -> float | None:
    """Fit ``cfg.model`` on ``cfg.data``; returns the final ``train/loss``."""
    require_complete(cfg)
    L.seed_everything(cfg.seed, workers=True)
    run_dir = Path(cfg.paths.output_dir)
    effective = OmegaConf.to_container(cfg, resolve=True)
    io.write_text(run_dir / "config.yaml", OmegaConf.to_yaml(effective))
    datamodule = build_datamodule(cfg)
    module = build_module(cfg)
    module.run_config = effective
    trainer = build_trainer(cfg)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    loss = trainer.callback_metrics.get("train/loss")
    log.info("run folder: %s", run_dir)
    return None if loss is None else float(loss)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run_task(train, cfg)


if __name__ == "__main__":
    main()
