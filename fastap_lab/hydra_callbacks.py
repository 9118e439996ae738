"""Hydra callbacks (``conf/hydra/default.yaml``): glue around :mod:`fastap_lab.runs`."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fastap_lab.runs import fresh_folder_problem, is_first_process


class FreshRunFolder(Callback):
    """Refuses a run / sweep folder that already holds files: one line, exit code 2."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        """Refuse a run folder that already holds files (exit code 2)."""
        self._check(Path(str(config.hydra.run.dir)), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        """Refuse a sweep folder that already holds files (exit code 2)."""
        self._check(Path(str(config.hydra.sweep.dir)), "hydra.sweep.dir")

    @staticmethod
    def _check(folder: Path, key: str) -> None:
        from fastap_lab.cli import EXIT_USER_ERROR

        if not is_first_process():
            return  # a DDP rank > 0: Lightning relaunches it into rank 0's (checked) run folder
        problem = fresh_folder_problem(folder, key)
        if problem:
            # Hydra has not written anything yet; SystemExit passes its error handler untouched.
            print(f"error: {problem}", file=sys.stderr)
            raise SystemExit(EXIT_USER_ERROR)
