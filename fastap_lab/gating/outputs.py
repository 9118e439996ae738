"""A gate folder's files, finding the newest one, and its summary.

A gate folder (``gate``, ``gate-2``, … of a run, or ``out=``): its files trace.csv,
gated_frames.csv, gate.json, trace.png (:func:`write_outputs`), finding the newest one, and the summary shown by the report and
the query-review notebook.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fastap_lab import io
from fastap_lab.evaluation.report import json_safe
from fastap_lab.runs import numbered_folders


def trace_csv(columns: dict[str, np.ndarray | list], formats: dict[str, str]) -> str:
    """CSV text of equal-length ``columns``.

    CSV text of equal-length ``columns`` (name -> values), in that order; ``formats`` gives a
    format spec per column (default: as is).
    """
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
    """Write trace.png: the score over time, the threshold and the gated windows.

    trace.png: score and smoothed score over time, the threshold, gated windows shaded; below,
    each ground truth the data has (``label``, ``displacement``). Written atomically.
    """
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


def write_outputs(out: Path, sequence, trace, record: dict) -> None:
    """Write a gate folder's files, each atomically.

    trace.csv, gated_frames.csv, gate.json, trace.png (each atomically; gate.json last but
    one, so a folder with gate.json has its tables) of a scored ``sequence``
    (:class:`~fastap_lab.gating.sequence.GatedSequence`) and its ``trace``.
    """
    columns = {"frame": sequence.keys, "time": sequence.times, "score": sequence.scores,
               "smoothed": trace.smoothed, "gated": trace.gated.astype(int)}  # fmt: skip
    truth = {}
    if sequence.labels is not None:
        columns["label"] = truth["label"] = sequence.labels
    if sequence.displacement is not None:
        columns["displacement"] = truth["displacement"] = sequence.displacement
    formats = {"time": ".6f", "score": ".6f", "smoothed": ".6f", "displacement": ".6f"}
    io.write_text(out / "trace.csv", trace_csv(columns, formats))
    kept = np.flatnonzero(trace.gated)
    gated = {name: [values[i] for i in kept] for name, values in columns.items() if name != "gated"}
    io.write_text(out / "gated_frames.csv", trace_csv(gated, formats))
    io.write_json(out / "gate.json", json_safe(record))
    title = f"{record['method']} gate, reference {record['reference']['name']}: " + (
        f"{record['frames_gated']} of {record['num_frames']} frames ({record['duty_cycle']:.0%})"
    )
    plot_trace(out / "trace.png", sequence.times, sequence.scores, trace.smoothed, trace.gated,
               trace.threshold, truth, title)  # fmt: skip


def gate_folders(run_dir: Path) -> list[Path]:
    """``gate``, ``gate-2``, … of a run that hold a gate.json, oldest first."""
    return numbered_folders(run_dir, "gate", "gate.json")


def newest_gate(run_dir: Path) -> Path | None:
    """The newest gate folder of ``run_dir``, or None."""
    folders = gate_folders(run_dir)
    return folders[-1] if folders else None


def summary_items(folder: Path) -> list[tuple[str, str]]:
    """(what, value) pairs summarising a gate folder's gate.json.

    (what, value) pairs of a gate folder's gate.json; ``what`` is a report word key
    (:mod:`fastap_lab.report.i18n`, ``gate_*``).
    """
    record = json.loads((Path(folder) / "gate.json").read_text())
    labels, displacement = record.get("labels") or {}, record.get("displacement") or {}

    def number(value) -> str:
        return "—" if value is None else f"{value:.4f}"

    items = [
        ("gate_reference", f"{record['reference'].get('name', '—')} ({record['method']})"),
        ("gate_threshold", f"{record['threshold']:.4g} — {record['threshold_choice']}"),
        ("gate_gated", f"{record['frames_gated']} / {record['num_frames']} ({record['duty_cycle']:.1%})"),
        ("gate_f1", " / ".join(number(labels.get(k)) for k in ("precision", "recall", "f1"))),
        ("gate_r", number(displacement.get("abs_pearson_r"))),
        ("gate_error", " / ".join(number(displacement.get(k)) for k in ("error_mean_share", "error_p95_share"))),
    ]  # fmt: skip
    baseline = record.get("surrogate_baseline")
    if baseline:
        verdict = " — better than this gate" if baseline["beats_this_gate"] else ""
        items.append(
            (
                "gate_surrogate",
                f"F1 {number(baseline['f1'])}, |r| {number(baseline['abs_pearson_r'])}{verdict}",
            )
        )
    return items
