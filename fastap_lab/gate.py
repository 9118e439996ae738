"""``python -m fastap_lab.gate [ckpt_path=RUN] reference=FRAME|IMAGE [data=…] [gate.*=…]``.

Respiratory gating: score every frame of a sequence against a breath-hold reference (a frame
index of the sequence, or an image), smooth, threshold, and write into ``<run>/gate/`` (with a
checkpoint; ``gate-2``, … never overwritten), ``out`` or ``outputs/gate/<time>/``, atomically:
trace.csv (``frame,time,score,smoothed,gated`` + ``label``, ``displacement`` when the data has
them), gated_frames.csv, gate.json (reference, method, threshold and how it was chosen,
agreement with labels / displacement) and trace.png. Methods and options: conf/gate.yaml.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from fastap_lab import io
from fastap_lab.cli import run_task
from fastap_lab.errors import ConfigError
from fastap_lab.evaluation.report import claim_output_dir, json_safe
from fastap_lab.gate_inputs import METHODS, gather_sequence, surrogate_baseline
from fastap_lab.gating.outputs import plot_trace, trace_csv
from fastap_lab.gating.sequence import summarise
from fastap_lab.gating.trace import check_trace_settings
from fastap_lab.surrogate import output_dir as surrogate_output_dir

log = logging.getLogger(__name__)


def gate_values(cfg: DictConfig) -> dict:
    """``cfg.gate`` checked, with ``method`` resolved (auto -> embedding / surrogate)."""
    values = OmegaConf.to_container(cfg.gate, resolve=True)
    check_trace_settings(values)
    method = values["method"]
    if method == "auto":
        method = "embedding" if cfg.get("ckpt_path") else "surrogate"
    if method not in METHODS:
        raise ConfigError(f"gate.method={method!r}: choose auto or one of {list(METHODS)}")
    if method == "embedding" and not cfg.get("ckpt_path"):
        raise ConfigError("gate.method=embedding needs ckpt_path=<run folder or .ckpt>; without one"
                          " use gate.method=surrogate or pixels")  # fmt: skip
    if method != "embedding" and cfg.get("ckpt_path"):
        raise ConfigError(f"ckpt_path is given but gate.method={method} does not use it; drop one")
    for name in ("batch_size", "chunk_frames", "pixel_size"):
        if isinstance(values[name], bool) or not isinstance(values[name], int) or values[name] < 1:
            raise ConfigError(f"gate.{name}={values[name]!r}: must be an integer >= 1")
    label = values["positive_label"]
    if label is not None and (isinstance(label, bool) or not isinstance(label, int)):
        raise ConfigError(f"gate.positive_label={label!r}: give an integer label or null")
    if values["embed_layer"] not in (None, "backbone", "projector"):
        raise ConfigError(
            f"gate.embed_layer={values['embed_layer']!r}: choose backbone, projector or null"
        )
    if values.get("target") not in (None, "") and method != "surrogate":
        raise ConfigError(f"gate.target is used by gate.method=surrogate only (got {method}); drop"
                          " gate.target or use gate.method=surrogate")  # fmt: skip
    if cfg.get("reference") in (None, ""):
        raise ConfigError("reference is not set: give reference=<frame index> (a frame of the"
                          " sequence at the breath-hold position) or reference=<image file>")  # fmt: skip
    return {**values, "method": method}


def output_dir(cfg: DictConfig, run_dir: Path | None) -> Path:
    """``out`` / ``<run>/gate`` (``-2``, … when taken), else Hydra's new run folder."""
    if run_dir is not None and not cfg.get("out"):
        return claim_output_dir(run_dir / "gate")
    return surrogate_output_dir(cfg)  # the same out= / Hydra-folder rule as the surrogate


def write_outputs(out: Path, sequence, trace, record: dict) -> None:
    """Write a gate folder's files, each atomically.

    trace.csv, gated_frames.csv, gate.json, trace.png (each atomically; gate.json last but
    one, so a folder with gate.json has its tables).
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


def gate(cfg: DictConfig) -> dict:
    """Run the gate described by ``cfg`` (conf/gate.yaml); returns gate.json."""
    values = gate_values(cfg)
    started = time.perf_counter()
    sequence, run_dir, positive, loaded = gather_sequence(cfg, values)
    seconds = time.perf_counter() - started
    trace, measured = summarise(sequence, values, positive)
    this_f1 = (measured["labels"] or {}).get("f1")
    baseline = surrogate_baseline(cfg, values, loaded, positive, this_f1)
    out = output_dir(cfg, run_dir)
    record = {
        "method": values["method"], "reference": sequence.reference,
        "checkpoint": cfg.get("ckpt_path"), "settings": values, **measured, **sequence.details,
        "surrogate_baseline": baseline, "scoring_seconds": seconds, "frames_per_second_scored": sequence.scores.size / max(seconds, 1e-9),
        "notes": sequence.notes, "utc_time": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
    write_outputs(out, sequence, trace, record)
    _log_summary(record, out)
    return record


def _log_summary(record: dict, out: Path) -> None:
    for note in record["notes"]:
        log.warning("note: %s", note)
    line = (f"{record['method']} gate: {record['frames_gated']} of {record['num_frames']} frames"
            f" gated ({record['duty_cycle']:.1%}), threshold {record['threshold']:.4g}"
            f" ({record['threshold_choice']})")  # fmt: skip
    labels, displacement = record["labels"], record["displacement"]
    if labels:
        line += (f"; against label {labels['positive_label']}: precision {labels['precision']:.3f},"
                 f" recall {labels['recall']:.3f}, F1 {labels['f1']:.3f}")  # fmt: skip
    if displacement and displacement["abs_pearson_r"] is not None:
        line += f"; |r| {displacement['abs_pearson_r']:.3f} against closeness in displacement"
    log.info(line)
    baseline = record["surrogate_baseline"]
    if baseline and baseline["beats_this_gate"]:
        log.warning("the surrogate method gates these frames better: F1 %.3f vs %.3f for this %s gate"
                    " (gate.method=surrogate, no checkpoint needed)", baseline["f1"], labels["f1"],
                    record["method"])  # fmt: skip
    log.info("outputs: %s", out)


@hydra.main(version_base="1.3", config_path="../conf", config_name="gate")
def main(cfg: DictConfig) -> dict:
    """Entry point (Hydra): run :func:`gate`, user errors as one ``error:`` line."""
    return run_task(gate, cfg)


if __name__ == "__main__":
    main()
