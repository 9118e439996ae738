"""One gate, end to end: the work of ``python -m fastap_lab.gate``.

``gate.*`` checked (:func:`check_gate_values`), the sequence read and scored in memory
(:mod:`.inputs`) or streamed from a video (:mod:`.stream`), the trace and its agreement
(:func:`.sequence.summarise`), the same gate by the surrogate for comparison, the folder's files
(:func:`.outputs.write_outputs`) and the console summary's lines. Pure: plain values in (a
:class:`GateRequest`), no Hydra.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fastap_lab.errors import ConfigError
from fastap_lab.gating.inputs import (
    LoadedSequence,
    load_in_memory,
    positive_label,
    reference_of,
    score_loaded,
)
from fastap_lab.gating.outputs import write_outputs
from fastap_lab.gating.sequence import GatedSequence, summarise
from fastap_lab.gating.stream import stream_scores, streams
from fastap_lab.gating.trace import check_trace_settings
from fastap_lab.respiration.placement import orientation_warning

METHODS = ("embedding", "pixels", "surrogate")


def check_gate_values(values: dict, checkpoint, reference) -> dict:
    """``gate.*`` (a plain dict) checked, with ``method`` resolved (auto -> embedding / surrogate).

    ``checkpoint``: ``ckpt_path=`` as given (None: none); ``reference``: ``reference=`` as given.
    """
    check_trace_settings(values)
    method = values["method"]
    if method == "auto":
        method = "embedding" if checkpoint else "surrogate"
    if method not in METHODS:
        raise ConfigError(f"gate.method={method!r}: choose auto or one of {list(METHODS)}")
    if method == "embedding" and not checkpoint:
        raise ConfigError("gate.method=embedding needs ckpt_path=<run folder or .ckpt>; without one"
                          " use gate.method=surrogate or pixels")  # fmt: skip
    if method != "embedding" and checkpoint:
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
    if reference in (None, ""):
        raise ConfigError("reference is not set: give reference=<frame index> (a frame of the"
                          " sequence at the breath-hold position) or reference=<image file>")  # fmt: skip
    return {**values, "method": method}


@dataclass
class GateRequest:
    """What a gate runs on, as plain values.

    Attributes:
        values: ``gate.*`` checked (:func:`check_gate_values`).
        data: the data config (a plain dict).
        reference: ``reference=`` as given (a frame index or an image file).
        fps: ``fps=`` as given (None: not given).
        surrogate: ``surrogate.*`` (a plain dict; checked when the surrogate is computed).
        embedder: the checkpoint's embedder (``embedding``), else None.
        checkpoint: ``ckpt_path=`` as given, for gate.json (None: none).
    """

    values: dict
    data: dict
    reference: int | str
    fps: float | None
    surrogate: dict
    embedder: object | None = None
    checkpoint: str | None = None


def gather_sequence(request: GateRequest) -> tuple[GatedSequence, int, LoadedSequence | None]:
    """Read and score the sequence a gate runs on.

    (the scored sequence, the positive label, the frames in memory — None for a streamed
    video).
    """
    data, values, loaded = request.data, request.values, None
    if streams(data, values["method"]):
        decode = {"channels": data["channels"], "image_size": data["image_size"]}
        reference, record, notes = reference_of(request.reference, None, **decode)
        sequence = stream_scores(data["video"], data.get("labels_csv"), decode, request.fps,
                                 values, request.embedder, reference, record, notes)  # fmt: skip
    else:
        loaded = load_in_memory(data, request.reference, request.fps)
        sequence = score_loaded(loaded, values, request.surrogate, request.embedder)
    return sequence, positive_label(sequence, values), loaded


def surrogate_baseline(
    request: GateRequest, loaded: LoadedSequence | None, positive: int, this_f1: float | None
) -> dict | None:
    """The same gate by the ``surrogate`` method, for comparison, or None.

    The same gate by the ``surrogate`` method, for comparison (like evaluate's raw-pixel
    guard): precision / recall / F1 and |r|, or None when it cannot be judged (no labels, the
    surrogate method itself, a streamed video, or ``gate.compare_surrogate=false``).
    """
    values = request.values
    if (values["method"] == "surrogate" or not values["compare_surrogate"] or this_f1 is None
            or loaded is None):  # fmt: skip
        return None
    settings = {**values, "method": "surrogate", "positive_label": positive}
    scored = score_loaded(loaded, settings, request.surrogate, None)
    _, measured = summarise(scored, settings, positive)
    labels, displacement = measured["labels"], measured["displacement"] or {}
    return {
        "method": "surrogate", "f1": labels["f1"], "precision": labels["precision"],
        "recall": labels["recall"], "duty_cycle": measured["duty_cycle"],
        "abs_pearson_r": displacement.get("abs_pearson_r"),
        "beats_this_gate": labels["f1"] > this_f1,
    }  # fmt: skip


def run_gate(request: GateRequest, output: Callable[[], Path]) -> tuple[dict, Path]:
    """Gate the sequence and write the gate folder's files.

    ``output`` claims the folder, called once everything is scored (bad input leaves no folder
    behind). Returns (gate.json's record, the folder written).
    """
    values = request.values
    started = time.perf_counter()
    sequence, positive, loaded = gather_sequence(request)
    seconds = time.perf_counter() - started
    trace, measured = summarise(sequence, values, positive)
    this_f1 = (measured["labels"] or {}).get("f1")
    baseline = surrogate_baseline(request, loaded, positive, this_f1)
    out = output()
    record = {
        "method": values["method"], "reference": sequence.reference,
        "checkpoint": request.checkpoint, "settings": values, **measured, **sequence.details,
        "surrogate_baseline": baseline, "scoring_seconds": seconds, "frames_per_second_scored": sequence.scores.size / max(seconds, 1e-9),
        "notes": sequence.notes, "utc_time": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
    write_outputs(out, sequence, trace, record)
    return record, out


def summary_lines(record: dict, out: Path) -> list[tuple[int, str]]:
    """The console summary of a gate: (logging level, line) each, warnings first."""
    lines = [(logging.WARNING, f"note: {note}") for note in record["notes"]]
    if "bridge" in record and (warning := orientation_warning(record["bridge"], "gate.target")):
        lines.append((logging.WARNING, warning))
    line = (f"{record['method']} gate: {record['frames_gated']} of {record['num_frames']} frames"
            f" gated ({record['duty_cycle']:.1%}), threshold {record['threshold']:.4g}"
            f" ({record['threshold_choice']})")  # fmt: skip
    labels, displacement = record["labels"], record["displacement"]
    if labels:
        line += (f"; against label {labels['positive_label']}: precision {labels['precision']:.3f},"
                 f" recall {labels['recall']:.3f}, F1 {labels['f1']:.3f}")  # fmt: skip
    if displacement and displacement["abs_pearson_r"] is not None:
        line += f"; |r| {displacement['abs_pearson_r']:.3f} against closeness in displacement"
    lines.append((logging.INFO, line))
    baseline = record["surrogate_baseline"]
    if baseline and baseline["beats_this_gate"]:
        lines.append((logging.WARNING, (
            f"the surrogate method gates these frames better: F1 {baseline['f1']:.3f} vs"
            f" {labels['f1']:.3f} for this {record['method']} gate (gate.method=surrogate, no"
            " checkpoint needed)"
        )))  # fmt: skip
    lines.append((logging.INFO, f"outputs: {out}"))
    return lines
