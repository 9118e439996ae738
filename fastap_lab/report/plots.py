"""The report's loss-curve figure (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

from fastap_lab import io
from fastap_lab.report.collect import Run


def loss_figure(path: Path, stages: list[Run]) -> Path | None:
    """Plot the training loss of ``stages`` into ``path``; return it, or None.

    One panel per stage with per-epoch train/loss (and val/mAP on a right axis when logged);
    None (nothing written) when no stage has a training log.
    """
    stages = [run for run in stages if run.epochs]
    if not stages:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(stages), figsize=(5 * len(stages), 3.4), squeeze=False)
    for axis, run in zip(axes[0], stages, strict=True):
        _panel(axis, run)
    figure.tight_layout()
    io.atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=110))
    plt.close(figure)
    return path


def _panel(axis, run: Run) -> None:
    epochs = [row["epoch"] + 1 for row in run.epochs]
    axis.plot(epochs, [row["train/loss"] for row in run.epochs], marker=".", color="tab:blue")
    axis.set(title=f"{run.stage}: {run.name}", xlabel="epoch", ylabel="train/loss")
    axis.title.set_fontsize(8)
    val = [(row["epoch"] + 1, row["val/mAP"]) for row in run.epochs if "val/mAP" in row]
    if val:
        right = axis.twinx()
        right.plot(*zip(*val, strict=True), marker=".", color="tab:orange")
        right.set_ylabel("val/mAP", color="tab:orange")
