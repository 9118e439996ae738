"""The respiratory surrogate as an embedding: ``python -m fastap_lab.evaluate baseline=surrogate``.

Label-free and untrained: the surrogate of the whole sequence (:mod:`fastap_lab.respiration`) is
turned into unit 2-vectors at angle ``pi * (s - min) / (max - min)``, so the cosine similarity
``cos(angle_i - angle_j)`` ranks frames exactly by their distance on the surrogate — and the
evaluation, its metrics and tables, run unchanged. A frame of the sequence gets its own value
(looked up by content); any other image is aligned to the median frame and placed at the median
value of its most similar frames (:func:`fastap_lab.respiration.bridge.place_image`).

Queries of another contrast (``eval.adapt.target=DIR``, mode ``bridge``) are placed on the
surrogate of that unlabelled target sequence instead, and carried over by matching the two
breathing ranges (:mod:`fastap_lab.respiration.bridge`).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch

from fastap_lab.errors import ConfigError
from fastap_lab.evaluation.embed import Embedder
from fastap_lab.respiration.bridge import (
    breathing_motion,
    field_agreement,
    place_image,
    range_map,
)
from fastap_lab.respiration.pipeline import gray_frames, surrogate_from_frames
from fastap_lab.respiration.register import apply_shifts
from fastap_lab.respiration.signal import sampling_rate, time_segments


class SequenceSurrogate:
    """A sequence's surrogate with what placing a new image on it needs.

    Args:
        images: uint8 [N, C, H, W] the sequence.
        times: float [N] seconds; groups: int64 [N] recording of each frame (None: one).
    """

    def __init__(self, images: torch.Tensor, times: torch.Tensor, groups=None) -> None:
        result = surrogate_from_frames(images, times, groups)
        gray = gray_frames(images)
        self.registered = apply_shifts(gray, result.shifts) if result.shifts is not None else gray
        self.values = result.values.numpy()
        self.index = {_key(image): i for i, image in enumerate(images)}
        self.rate = sampling_rate(times, time_segments(times, groups))  # frames per second
        self.placed = 0  # images placed by similarity (not frames of the sequence)

    def value_of(self, image: torch.Tensor) -> float:
        """The surrogate value of uint8 [C, H, W]: its own if it is a frame of the sequence."""
        known = self.index.get(_key(image))
        if known is not None:
            return float(self.values[known])
        self.placed += 1
        return place_image(gray_frames(image[None])[0], self.registered, self.values)[0]


def _key(image: torch.Tensor) -> bytes:
    return image.detach().cpu().contiguous().numpy().tobytes()


class SurrogateEmbedding:
    """uint8 [B, C, H, W] -> unit float32 [B, 2] at the images' angle on ``sequence``'s range.

    ``carry`` (optional) maps each image to a value on ``sequence``'s surrogate itself (the
    cross-contrast bridge); by default the value is :meth:`SequenceSurrogate.value_of`.
    """

    def __init__(self, sequence: SequenceSurrogate, carry=None) -> None:
        self.sequence = sequence
        self.carry = carry or sequence.value_of
        self.low, self.high = float(sequence.values.min()), float(sequence.values.max())

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, C, H, W] -> unit float32 [B, 2] (cos, sin of the angle), on their device."""
        values = torch.tensor([self.carry(image) for image in images.cpu()], dtype=torch.float64)
        span = max(self.high - self.low, 1e-12)
        angle = math.pi * ((values - self.low) / span).clamp(0.0, 1.0)
        return torch.stack([angle.cos(), angle.sin()], dim=1).float().to(images.device)


def surrogate_embedder(frames, device: torch.device) -> Embedder:
    """The ``surrogate`` baseline on a FrameSet (its images, times and recordings)."""
    sequence = SequenceSurrogate(frames.images, frames.times, frames.groups)
    return Embedder(
        embed=SurrogateEmbedding(sequence), kind="surrogate", device=device,
        details={"embedding": "respiratory surrogate of the whole sequence, as an angle"},
    )  # fmt: skip


def bridged_embedder(embedder: Embedder, target_images: torch.Tensor, target: str):
    """(the Embedder for queries of the target contrast, metrics.json's ``adaptation``).

    The target sequence (uint8 [M, C, H, W], unlabelled) is assumed to be sampled at the source
    sequence's frame rate (the same session), its surrogate oriented like the source's by their
    breathing motions, and a query's value on it carried to the source surrogate by matching the
    breathing ranges (:mod:`fastap_lab.respiration.bridge`).
    """
    if not isinstance(embedder.embed, SurrogateEmbedding):
        raise ConfigError(
            f"eval.adapt.mode=bridge needs baseline=surrogate (got the {embedder.kind}"
            " embedding); use eval.adapt.mode=adabn for a checkpoint"
        )
    source = embedder.embed.sequence
    bridge = SequenceSurrogate(
        target_images, torch.arange(target_images.shape[0], dtype=torch.float64) / source.rate
    )
    agreement = field_agreement(
        breathing_motion(source.registered, source.values),
        breathing_motion(bridge.registered, bridge.values),
    )
    sign = 1.0 if agreement >= 0 else -1.0  # the target surrogate upside down: turn it

    def carry(image: torch.Tensor) -> float:
        value = sign * bridge.value_of(image)
        return float(range_map(np.array([value]), sign * bridge.values, source.values)[0])

    record = {
        "mode": "bridge", "target": str(Path(target).expanduser().resolve()),
        "num_target_images": int(target_images.shape[0]), "assumed_fps": source.rate,
        "orientation_agreement": round(agreement, 3),
        "queries": "external queries: placed on the target sequence's surrogate, carried to the"
        " gallery's by matching the breathing ranges (1st-99th percentiles)",
        "gallery": "the gallery sequence's own surrogate",
    }  # fmt: skip
    embed = SurrogateEmbedding(source, carry)
    return dataclasses.replace(embedder, embed=embed), record


def orientation_warning(record: dict) -> str | None:
    """A line when the two sequences' motion fields barely agree (orientation is a guess)."""
    agreement = abs(record.get("orientation_agreement", 1.0))
    if agreement >= 0.3:
        return None
    return (
        f"eval.adapt: the target and gallery sequences' breathing motions agree only"
        f" {agreement:.2f} (|cosine|): the target surrogate's orientation is a guess; are they"
        " the same patient, slice and field of view?"
    )
