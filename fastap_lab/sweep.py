"""The Hydra callback that writes a multirun's summary when the sweep ends (glue).

Registered in ``conf/train.yaml``; the summary itself (``sweep_summary.md`` + ``.csv``, one row
per job): :mod:`fastap_lab.report.sweep_summary`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fastap_lab.report.sweep_summary import SUMMARY_NAME, write_summary

log = logging.getLogger(__name__)


class SweepSummary(Callback):
    """Hydra callback: writes the sweep summary when a multirun ends.

    Args:
        maximize: the optimised metric is better when higher (val/mAP); false for losses.
    """

    def __init__(self, maximize: bool = True) -> None:
        self.maximize = bool(maximize)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write the sweep summary once every job has ended."""
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            rows = write_summary(sweep_dir, self.maximize)
        except Exception as exc:  # a summary problem must not hide the jobs' own results
            log.warning("sweep summary not written (%s: %s)", type(exc).__name__, exc)
            return
        if rows:
            failed = sum(row["status"] != "ok" for row in rows)
            log.info(
                "sweep summary (%d jobs, %d failed): %s",
                len(rows), failed, sweep_dir / f"{SUMMARY_NAME}.md",
            )  # fmt: skip
