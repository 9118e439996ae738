"""Small training callbacks."""

from __future__ import annotations

import time

import lightning as L


class EpochTimer(L.Callback):
    """Logs ``train/epoch_time_s``: wall time of each training epoch (reports sum and range it)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start the epoch's clock."""
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Log the epoch's wall time as ``train/epoch_time_s``."""
        elapsed = time.perf_counter() - self._start
        pl_module.log("train/epoch_time_s", elapsed, on_step=False, on_epoch=True, sync_dist=True)
