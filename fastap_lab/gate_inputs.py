"""Glue of ``python -m fastap_lab.gate``: from the config to a scored sequence.

Config -> a :class:`~fastap_lab.gating.sequence.GatedSequence`: read the frames (in memory, or a video streamed in chunks), the reference and
the checkpoint, score with the chosen method (:mod:`fastap_lab.gating`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from fastap_lab.checkpoints import resolve_checkpoint_path
from fastap_lab.data.frames import FrameSet
from fastap_lab.data.queries import load_query_files
from fastap_lab.errors import ConfigError, DataError
from fastap_lab.gating.scoring import embedding_scores, pixel_scores, surrogate_scores
from fastap_lab.gating.sequence import GatedSequence
from fastap_lab.gating.stream import stream_scores, streams
from fastap_lab.respiration.reference import read_reference

METHODS = ("embedding", "pixels", "surrogate")


def reference_of(raw, num_frames: int | None, channels: int, image_size: int):
    """(frame index int, or uint8 [C, S, S] image; gate.json's reference; notes)."""
    text = str(raw).strip()
    if isinstance(raw, int) or text.lstrip("-").isdigit():
        index = int(text)
        if num_frames is not None and not 0 <= index < num_frames:
            raise ConfigError(f"reference={index}: the sequence has frames 0..{num_frames - 1};"
                              " give a frame index in range or an image file")  # fmt: skip
        if index < 0:
            raise ConfigError(f"reference={index}: a frame index is >= 0")
        return index, {"kind": "frame", "frame": index, "name": f"frame {index}"}, []
    if not Path(text).expanduser().is_file():
        raise DataError(f"reference={text}: not a frame index and no such image file; give a frame"
                        " index of the sequence or the path of an image")  # fmt: skip
    query = load_query_files([text], channels=channels, image_size=image_size)[0]
    record = {"kind": "image", "path": str(query.path.resolve()), "name": query.path.name}
    notes = [f"reference {query.path.name}: {note}" for note in query.notes]
    return query.image, record, notes


def checkpoint_run(cfg: DictConfig) -> tuple[Path | None, Path | None]:
    """(checkpoint file, its run folder) or (None, None)."""
    if not cfg.get("ckpt_path"):
        return None, None
    checkpoint = resolve_checkpoint_path(cfg.ckpt_path, "ckpt_path")
    parent = checkpoint.parent
    return checkpoint, parent.parent if parent.name == "checkpoints" else parent


def embedder_for(cfg: DictConfig, values: dict, checkpoint: Path | None):
    """The embedder of ``checkpoint`` on the configured device (None without a checkpoint)."""
    from fastap_lab.embedders import checkpoint_embedder
    from fastap_lab.evaluation.embed import pick_device

    if checkpoint is None:
        return None
    return checkpoint_embedder(
        checkpoint, pick_device(str(values["device"])), values["embed_layer"]
    )


@dataclass
class LoadedSequence:
    """Frames read into memory with their times and the reference.

    Frames read into memory with their times and the reference: what every method scores
    (kept, so a comparison by another method does not read the frames again).
    """

    frames: FrameSet
    is_video: bool
    times: torch.Tensor
    reference: int | torch.Tensor
    record: dict
    notes: list[str]


def gather_sequence(cfg: DictConfig, values: dict):
    """Read and score the sequence a gate runs on.

    (the scored sequence, the checkpoint's run folder or None, the positive label, the
    frames in memory — None for a streamed video).
    """
    checkpoint, run_dir = checkpoint_run(cfg)
    embedder = embedder_for(cfg, values, checkpoint)
    data, loaded = cfg.data, None
    if streams(data, values["method"]):
        reference, record, notes = reference_of(cfg.reference, None, data.channels, data.image_size)
        decode = {"channels": data.channels, "image_size": data.image_size}
        sequence = stream_scores(data.video, data.get("labels_csv"), decode, cfg.get("fps"), values,
                                 embedder, reference, record, notes)  # fmt: skip
    else:
        loaded = load_in_memory(cfg)
        sequence = score_loaded(loaded, cfg, values, embedder)
    return sequence, run_dir, positive_label(sequence, values), loaded


def load_in_memory(cfg: DictConfig) -> LoadedSequence:
    """Decode the frames, their times and the reference (one line for any bad input)."""
    from fastap_lab.surrogate import frame_times, load_frames

    frames, labels_csv, is_video = load_frames(cfg)
    data = cfg.data
    reference, record, notes = reference_of(
        cfg.reference, len(frames), data.channels, data.image_size
    )
    notes = list(frames.notes) + notes
    times, _ = frame_times(cfg, frames, read_reference(labels_csv).has_time, is_video, notes)
    return LoadedSequence(frames, is_video, times, reference, record, notes)


def score_loaded(loaded: LoadedSequence, cfg: DictConfig, values: dict, embedder) -> GatedSequence:
    """Score the loaded frames by ``values["method"]``."""
    from fastap_lab.surrogate import frame_keys, settings_from

    frames, reference = loaded.frames, loaded.reference
    is_frame = isinstance(reference, int)
    image = frames.images[reference] if is_frame else reference
    method, adapt = values["method"], bool(values["adapt"])
    if method == "embedding":
        scores, details = embedding_scores(embedder, frames.images, image, reference_is_frame=is_frame,
                                           adapt=adapt, batch_size=values["batch_size"])  # fmt: skip
    elif method == "pixels":
        scores, details = pixel_scores(frames.images, image, values["pixel_size"], adapt)
    else:
        scores, details = surrogate_scores(
            frames.images, loaded.times, frames.groups, settings_from(cfg), reference,
            size=values["pixel_size"], adapt=adapt, target=target_images(values, frames, is_frame),
        )  # fmt: skip
    labels = None if frames.labels is None else frames.labels.numpy()
    displacement = frames.extras.get("displacement")
    displacement = None if displacement is None else displacement.numpy()
    sequence = GatedSequence(
        keys=frame_keys(frames, loaded.is_video), times=loaded.times.numpy(),
        groups=frames.groups.numpy(), scores=scores, labels=labels, displacement=displacement,
        reference=dict(loaded.record), notes=list(loaded.notes),
        details={"data_root": str(frames.root), **details},
    )  # fmt: skip
    fill_reference_truth(sequence, reference, values)
    return sequence


def target_images(values: dict, frames, reference_is_frame: bool):
    """``gate.target`` decoded as the frames are (uint8 [M, C, H, W]), or None when unset."""
    if values.get("target") in (None, ""):
        return None
    if reference_is_frame:
        raise ConfigError(
            f"gate.target={values['target']}: the reference is a frame of the sequence, which needs"
            " no bridge; gate.target is for an image reference of another contrast"
        )
    from fastap_lab.evaluation.adapt import load_target_images

    channels, size = frames.images.shape[1], frames.images.shape[-1]
    return load_target_images(values["target"], channels=channels, image_size=size,
                              key="gate.target")  # fmt: skip


def positive_label(sequence: GatedSequence, values: dict) -> int:
    """gate.positive_label, else the reference frame's label, else 1."""
    if values["positive_label"] is not None:
        return int(values["positive_label"])
    frame = sequence.reference.get("frame")
    if frame is not None and sequence.labels is not None and sequence.labels[frame] >= 0:
        return int(sequence.labels[frame])
    return 1


def fill_reference_truth(sequence: GatedSequence, reference, values: dict) -> None:
    """Fill in the reference's label and displacement for gate.json.

    The reference's label and displacement in gate.json (scoring only): a frame's own; for an
    image, the mean displacement of the frames with the positive label.
    """
    if sequence.displacement is None:
        return
    if isinstance(reference, int):
        sequence.reference["displacement"] = float(sequence.displacement[reference])
        return
    if sequence.labels is None:
        sequence.notes.append("image reference without labels: its displacement is unknown, so"
                              " the displacement agreement is skipped")  # fmt: skip
        return
    chosen = sequence.labels == positive_label(sequence, values)
    known = chosen & np.isfinite(sequence.displacement)
    if known.any():
        sequence.reference["displacement"] = float(np.mean(sequence.displacement[known]))
        sequence.reference["displacement_from"] = "mean displacement of the positive-label frames"


def surrogate_baseline(
    cfg: DictConfig, values: dict, loaded: LoadedSequence | None, positive: int,
    this_f1: float | None,
) -> dict | None:  # fmt: skip
    """The same gate by the ``surrogate`` method, for comparison, or None.

    The same gate by the ``surrogate`` method, for comparison (like evaluate's raw-pixel
    guard): precision / recall / F1 and |r|, or None when it cannot be judged (no labels, the
    surrogate method itself, a streamed video, or ``gate.compare_surrogate=false``).
    """
    from fastap_lab.gating.sequence import summarise

    if (values["method"] == "surrogate" or not values["compare_surrogate"] or this_f1 is None
            or loaded is None):  # fmt: skip
        return None
    settings = {**values, "method": "surrogate", "positive_label": positive}
    _, measured = summarise(score_loaded(loaded, cfg, settings, None), settings, positive)
    labels, displacement = measured["labels"], measured["displacement"] or {}
    return {
        "method": "surrogate", "f1": labels["f1"], "precision": labels["precision"],
        "recall": labels["recall"], "duty_cycle": measured["duty_cycle"],
        "abs_pearson_r": displacement.get("abs_pearson_r"),
        "beats_this_gate": labels["f1"] > this_f1,
    }  # fmt: skip
