"""surrogate.png: the surrogate over time, the reference displacement beneath when known."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastap_lab import io


def plot_surrogate(
    path: Path, times: np.ndarray, surrogate: np.ndarray, displacement: np.ndarray | None,
    title: str,
) -> Path:  # fmt: skip
    """Write the figure atomically. times, surrogate, displacement: float [N] (plotted by time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(times, kind="stable")
    rows = 1 if displacement is None else 2
    fig, axes = plt.subplots(rows, 1, figsize=(11, 2.6 * rows), sharex=True, squeeze=False)
    axes[0, 0].plot(times[order], surrogate[order], linewidth=0.9, color="tab:blue")
    axes[0, 0].set(ylabel="surrogate (z)", title=title)
    if displacement is not None:
        axes[1, 0].plot(times[order], displacement[order], linewidth=0.9, color="tab:orange")
        axes[1, 0].set(ylabel="displacement")
    axes[-1, 0].set(xlabel="time (s)")
    fig.tight_layout()
    io.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return path
