"""``python -m fastap_lab.evaluate ckpt_path=<run folder or .ckpt> [data=…] [eval.*=…]``.

Embeds every frame with the checkpoint's model (rebuilt from the config stored in it) or a
baseline (``baseline=pixels`` / ``baseline=untrained``), then writes into ``<run>/inference/`` (or
``inference-2``, … — never over an earlier evaluation; Hydra's run folder when the checkpoint
is not inside a run folder): embeddings.npy, labels.npy, frames.csv, metrics.json,
per_query.csv, retrieval_tables.md + tables/*.csv, retrieval_grid.png, diagnostics.json/.png,
evaluate_config.yaml. Every file is written atomically.

Entry point only: the config goes to :func:`fastap_lab.evaluation_task.evaluate` (the glue that
other code calls too), a user error comes back as one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fastap_lab.cli import EXIT_USER_ERROR, run_task
from fastap_lab.evaluation_task import evaluate

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> dict:
    """Entry point (Hydra): run :func:`evaluate`, user errors as one ``error:`` line."""
    return run_task(evaluate, cfg, list(HydraConfig.get().overrides.task), log)


# Baselines used to be model options; the old words get one line saying the new ones.
RENAMED = {"model=pixels": "baseline=pixels", "model=untrained": "baseline=untrained"}


def refuse_renamed(argv: list[str]) -> None:
    """Exit with one ``error:`` line when ``argv`` uses an old baseline word."""
    for arg in argv:
        if arg in RENAMED:
            print(f"error: {arg} is now {RENAMED[arg]} (a baseline is an evaluation choice,"
                  " not a model)", file=sys.stderr)  # fmt: skip
            raise SystemExit(EXIT_USER_ERROR)


if __name__ == "__main__":
    refuse_renamed(sys.argv[1:])
    main()
