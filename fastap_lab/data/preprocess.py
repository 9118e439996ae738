"""The network's input preprocessing, in one place.

uint8 frames -> the float tensor a model takes (:func:`normalize_images`), and its
:class:`PreprocessSpec`, written into a gallery (gallery.json) and an export (preprocess.json)
so a query is prepared exactly as training's evaluation prepared the frames.

Training evaluation (``FrameAugment.normalize``), ``python -m fastap_lab.embed``, ``search`` and
``export`` all call :func:`normalize_images`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from fastap_lab.errors import DataError

SCALE = 1.0 / 255.0  # uint8 [0, 255] -> [0, 1]


def normalize_images(
    images: torch.Tensor, mean: float, std: float, scale: float = SCALE
) -> torch.Tensor:
    """uint8 [B, C, H, W] -> float32 [B, C, H, W]: times ``scale``, then ``(x - mean) / std``.

    The scale is applied as a division by 1 / scale (255 for the default, exactly), so the
    default gives the same floats as dividing by 255.
    """
    return (images.float() / (1.0 / scale) - mean) / std


@dataclass(frozen=True)
class PreprocessSpec:
    """The preprocessing that turns decoded frames into the network's input.

    How frames reach the network: decoded to ``channels`` x ``image_size``² uint8 (resized
    by :func:`fastap_lab.data.decode.load_image`), times ``scale``, minus ``mean``, over ``std``.
    ``register``: the run's frames were registered onto their temporal median first
    (``data.register``); a single query image cannot be, so search notes it.
    """

    channels: int
    image_size: int
    mean: float
    std: float
    scale: float = SCALE
    register: bool = False

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, C, H, W] -> the float32 network input [B, C, H, W]."""
        return normalize_images(images, self.mean, self.std, self.scale)

    def to_dict(self) -> dict:
        """The spec's fields as a JSON-ready dict, plus a line describing the expected input."""
        return {**asdict(self), "input": "uint8 [N, C, H, W], C = channels, H = W = image_size"}

    @classmethod
    def from_dict(cls, values: dict, where: str) -> PreprocessSpec:
        """The spec written in ``values``; one DataError line naming ``where`` when incomplete."""
        try:
            return cls(int(values["channels"]), int(values["image_size"]), float(values["mean"]),
                       float(values["std"]), float(values.get("scale", SCALE)),
                       bool(values.get("register", False)))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: its preprocessing spec is incomplete ({exc!r})") from exc

    def differences(self, other: PreprocessSpec) -> list[str]:
        """``name a != b`` for every field that differs."""
        mine, theirs = asdict(self), asdict(other)
        return [f"{k} {mine[k]} != {theirs[k]}" for k in mine if mine[k] != theirs[k]]


def spec_of_run(run_config: dict, data: dict | None = None) -> PreprocessSpec:
    """Build the PreprocessSpec of a training run.

    The spec of a training run's config (``augment.mean/std``; ``data.channels``,
    ``image_size``, ``register`` — from ``data`` when given, e.g. an evaluation's settings).
    """
    data = data or run_config["data"]
    augment = run_config.get("augment") or {}
    return PreprocessSpec(
        channels=int(data["channels"]), image_size=int(data["image_size"]),
        mean=float(augment.get("mean", 0.0)), std=float(augment.get("std", 1.0)),
        register=bool(data.get("register") or False),
    )  # fmt: skip
