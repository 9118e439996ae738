"""Where an image sits on a sequence's respiratory surrogate.

In the sequence's own contrast (:class:`SequenceSurrogate`), or in another contrast through an
unlabelled sequence of that contrast (:class:`Bridge`).

One home for both users: the surrogate as an embedding (``evaluate baseline=surrogate``,
:mod:`fastap_lab.evaluation.surrogate_embedding`) and the gate's image references
(``python -m fastap_lab.gate reference=IMAGE gate.target=DIR``). The primitives — alignment,
the motion fields that orient two surrogates alike, range matching — are in
:mod:`fastap_lab.respiration.bridge`. Pure: torch / numpy only.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from fastap_lab.respiration.bridge import (
    breathing_motion,
    field_agreement,
    place_image,
    range_map,
    similarity_features,
)
from fastap_lab.respiration.pipeline import SurrogateSettings, gray_frames, surrogate_from_frames
from fastap_lab.respiration.register import apply_shifts
from fastap_lab.respiration.signal import sampling_rate, time_segments


def _key(image: torch.Tensor) -> bytes:
    return image.detach().cpu().contiguous().numpy().tobytes()


class SequenceSurrogate:
    """A sequence's surrogate with what placing a new image on it needs.

    Args:
        images: uint8 [N, C, H, W] the sequence.
        times: float [N] seconds.
        groups: int64 [N] recording of each frame (None: one).
        settings: how the surrogate is computed (None: the defaults).
    """

    def __init__(self, images: torch.Tensor, times: torch.Tensor, groups=None,
                 settings: SurrogateSettings | None = None) -> None:  # fmt: skip
        self.result = surrogate_from_frames(images, times, groups, settings)
        gray = gray_frames(images)
        shifts = self.result.shifts
        self.registered = apply_shifts(gray, shifts) if shifts is not None else gray
        self.values = self.result.values.numpy()
        self.index = {_key(image): i for i, image in enumerate(images)}
        self.rate = sampling_rate(times, time_segments(times, groups))  # frames per second
        self.placed = 0  # images placed by similarity (not frames of the sequence)

    @cached_property
    def median(self) -> torch.Tensor:
        """The registered frames' temporal median float [H, W], what images are aligned to."""
        return self.registered.median(dim=0).values

    @cached_property
    def features(self) -> torch.Tensor:
        """The registered frames' similarity features float64 [N, P], computed once.

        :func:`~fastap_lab.respiration.bridge.similarity_features` (per frame): every placed
        image is compared with them.
        """
        return similarity_features(self.registered)

    def value_of(self, image: torch.Tensor) -> float:
        """The surrogate value of uint8 [C, H, W]: its own if it is a frame of the sequence."""
        known = self.index.get(_key(image))
        if known is not None:
            return float(self.values[known])
        self.placed += 1
        gray = gray_frames(image[None])[0]
        return place_image(gray, self.median, self.features, self.values)[0]


class Bridge:
    """Values on ``source``'s surrogate for images of another contrast, through ``target_images``.

    The target sequence (uint8 [M, C, H, W], unlabelled, the images' contrast) is assumed to be
    sampled at the source's frame rate (one session); its surrogate is oriented like the source's
    by their breathing motions, an image is placed on it (same contrast) and carried to the
    source's surrogate by matching the two breathing ranges.

    Attributes:
        agreement: confidence-weighted cosine of the two motion fields before orienting ([-1, 1];
            near 0 the orientation is a guess).
    """

    def __init__(self, source: SequenceSurrogate, target_images: torch.Tensor) -> None:
        times = torch.arange(target_images.shape[0], dtype=torch.float64) / source.rate
        self.source = source
        self.target = SequenceSurrogate(target_images, times)
        self.agreement = field_agreement(
            breathing_motion(source.registered, source.values),
            breathing_motion(self.target.registered, self.target.values),
        )
        self.sign = 1.0 if self.agreement >= 0 else -1.0  # the target upside down: turn it

    def value_of(self, image: torch.Tensor) -> float:
        """The source-surrogate value of uint8 [C, H, W] in the target's contrast."""
        value = self.sign * self.target.value_of(image)
        carried = range_map(np.array([value]), self.sign * self.target.values, self.source.values)
        return float(carried[0])

    def record(self) -> dict:
        """What the bridge assumed and measured, for metrics.json / gate.json."""
        return {
            "num_target_images": len(self.target.values), "assumed_fps": self.source.rate,
            "orientation_agreement": round(self.agreement, 3),
        }  # fmt: skip


def orientation_warning(record: dict, key: str) -> str | None:
    """A line when the two sequences' motion fields barely agree (orientation is a guess)."""
    agreement = abs(record.get("orientation_agreement", 1.0))
    if agreement >= 0.3:
        return None
    return (
        f"{key}: the target and gallery sequences' breathing motions agree only"
        f" {agreement:.2f} (|cosine|): the target surrogate's orientation is a guess; are they"
        " the same patient, slice and field of view?"
    )
