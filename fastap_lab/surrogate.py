"""``python -m fastap_lab.surrogate data=… [out=DIR] [fps=…] [embeddings=FILE] [surrogate.*=…]``.

A respiratory surrogate from the images alone (:mod:`fastap_lab.respiration`), or from per-frame
embeddings (``embeddings=<run>/inference/embeddings.npy``). Writes into ``out`` (``out-2``, … when
it exists) or Hydra's new run folder ``outputs/surrogate/<time>/``, every file atomically:
surrogate.csv (``frame,time,surrogate``, one row per frame in labels.csv order), surrogate.json
(method, parameters, chosen component, |Pearson r| against labels.csv's ``displacement`` column
when there is one), surrogate.png. The work: :func:`fastap_lab.respiration.run.run_surrogate`.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from fastap_lab.cli import log_lines, output_dir, run_task
from fastap_lab.respiration.run import run_surrogate, summary_lines
from fastap_lab.respiratory_config import data_config, settings_from

log = logging.getLogger(__name__)


def surrogate(cfg: DictConfig) -> dict:
    """Run the surrogate described by ``cfg`` (conf/surrogate.yaml); returns surrogate.json."""
    record, out = run_surrogate(
        settings_from(cfg), data_config(cfg), fps=cfg.get("fps"),
        embeddings=cfg.get("embeddings"), output=lambda: output_dir(cfg),
    )  # fmt: skip
    log_lines(log, summary_lines(record, out))
    return record


@hydra.main(version_base="1.3", config_path="../conf", config_name="surrogate")
def main(cfg: DictConfig) -> dict:
    """Entry point (Hydra): run :func:`surrogate`, user errors as one ``error:`` line."""
    return run_task(surrogate, cfg)


if __name__ == "__main__":
    main()
