"""The files of a gate folder: trace.csv, gated_frames.csv (text) and trace.png."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastap_lab import io


def trace_csv(columns: dict[str, np.ndarray | list], formats: dict[str, str]) -> str:
    """CSV text of equal-length ``columns`` (name -> values), in that order; ``formats`` gives a
    format spec per column (default: as is)."""
    names = list(columns)
    rows = [",".join(names)]
    for values in zip(*columns.values(), strict=True):
        rows.append(
            ",".join(format(v, formats.get(n, "")) for n, v in zip(names, values, strict=True))
        )
    return "\n".join(rows) + "\n"


def plot_trace(
    path: Path,
    times: np.ndarray,
    scores: np.ndarray,
    smoothed: np.ndarray,
    gated: np.ndarray,
    threshold: float,
    truth: dict[str, np.ndarray],
    title: str,
) -> None:
    """trace.png: score and smoothed score over time, the threshold, gated windows shaded; below,
    each ground truth the data has (``label``, ``displacement``). Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(times, kind="stable")
    t = times[order]
    rows = 1 + len(truth)
    figure, axes = plt.subplots(rows, 1, figsize=(11, 2.6 + 1.4 * (rows - 1)), sharex=True,
                                squeeze=False)  # fmt: skip
    top = axes[0, 0]
    top.plot(t, scores[order], color="0.7", lw=0.6, label="score")
    top.plot(t, smoothed[order], color="C0", lw=1.2, label="smoothed")
    top.axhline(threshold, color="C3", ls="--", lw=1, label=f"threshold {threshold:.3g}")
    top.fill_between(t, 0, 1, where=gated[order], transform=top.get_xaxis_transform(),
                     color="C2", alpha=0.2, step="mid", label="gated")  # fmt: skip
    top.set_ylabel("score")
    top.set_title(title, fontsize=9)
    top.legend(loc="upper right", fontsize=7, ncol=4)
    for axis, (name, values) in zip(axes[1:, 0], truth.items(), strict=True):
        axis.plot(
            t,
            values[order],
            color="k",
            lw=0.8,
            drawstyle="steps-mid" if name == "label" else "default",
        )
        axis.fill_between(t, 0, 1, where=gated[order], transform=axis.get_xaxis_transform(),
                          color="C2", alpha=0.2, step="mid")  # fmt: skip
        axis.set_ylabel(name)
    axes[-1, 0].set_xlabel("time (s)")
    figure.tight_layout()
    io.atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=110))
    plt.close(figure)
