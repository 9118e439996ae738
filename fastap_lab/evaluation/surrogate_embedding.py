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

import torch

from fastap_lab.errors import ConfigError
from fastap_lab.evaluation.embed import Embedder
from fastap_lab.respiration.placement import Bridge, SequenceSurrogate


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
    bridge = Bridge(embedder.embed.sequence, target_images)
    record = {
        "mode": "bridge", "target": str(Path(target).expanduser().resolve()), **bridge.record(),
        "queries": "external queries: placed on the target sequence's surrogate, carried to the"
        " gallery's by matching the breathing ranges (1st-99th percentiles)",
        "gallery": "the gallery sequence's own surrogate",
    }  # fmt: skip
    embed = SurrogateEmbedding(bridge.source, bridge.value_of)
    return dataclasses.replace(embedder, embed=embed), record
