"""A gate's sequence in memory: frames, times and reference read, then scored.

The reference (a frame index of the sequence, or an image file), the frames of the data config
with their times (:mod:`fastap_lab.respiration.sequence`), ``gate.target`` decoded like them,
the scores by ``gate.method`` (:mod:`.scoring`) as a :class:`~.sequence.GatedSequence`, and the
reference's label / displacement. A streamed video is :mod:`.stream`'s. Pure: no Hydra.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fastap_lab.data.frames import FrameSet
from fastap_lab.data.queries import load_query_files
from fastap_lab.errors import ConfigError, DataError
from fastap_lab.gating.scoring import embedding_scores, pixel_scores, surrogate_scores
from fastap_lab.gating.sequence import GatedSequence
from fastap_lab.respiration.pipeline import checked_settings
from fastap_lab.respiration.reference import read_reference
from fastap_lab.respiration.sequence import frame_keys, frame_times, load_frames


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


def load_in_memory(data: dict, raw_reference, fps) -> LoadedSequence:
    """Decode the frames, their times and the reference (one line for any bad input).

    ``data``: the data config (a plain dict); ``raw_reference``: ``reference=`` as given;
    ``fps``: ``fps=`` as given (None: not given).
    """
    frames, labels_csv, is_video = load_frames(data)
    reference, record, notes = reference_of(
        raw_reference, len(frames), data["channels"], data["image_size"]
    )
    notes = list(frames.notes) + notes
    times, _ = frame_times(frames, fps, read_reference(labels_csv).has_time, is_video, notes)
    return LoadedSequence(frames, is_video, times, reference, record, notes)


def score_loaded(loaded: LoadedSequence, values: dict, surrogate: dict, embedder) -> GatedSequence:
    """Score the loaded frames by ``values["method"]``.

    ``values``: ``gate.*`` checked; ``surrogate``: ``surrogate.*`` (a plain dict, checked here
    when the surrogate is computed); ``embedder``: a checkpoint's (``embedding``) or None.
    """
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
            frames.images, loaded.times, frames.groups, checked_settings(surrogate), reference,
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
