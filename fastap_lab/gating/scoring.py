"""Scoring every frame of a sequence against the reference, per ``gate.method``.

The methods:

- ``embedding``: cosine similarity of a checkpoint's embeddings (``adapt``: the sequence is
  embedded with its own BatchNorm statistics, AdaBN, the reference with the checkpoint's);
- ``pixels``: cosine similarity of standardised downsampled pixels (``adapt``: of MIND
  descriptors) — the plain alternative every learned gate should beat;
- ``surrogate``: closeness on the respiratory surrogate of the sequence; an image reference is
  placed on it by where the frames look most like it (:func:`.scores.place_on_surrogate`), or,
  with ``target`` (an unlabelled sequence in the reference's contrast), through that sequence
  (:class:`fastap_lab.respiration.placement.Bridge`).

Glue-free: an embedder is passed in (:class:`fastap_lab.evaluation.embed.Embedder`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from fastap_lab.evaluation.adapt import adapt_batchnorm
from fastap_lab.evaluation.embed import PixelEmbedding, embed_images
from fastap_lab.gating.scores import (
    cosine_scores,
    mind_descriptors,
    place_on_surrogate,
    surrogate_closeness,
)
from fastap_lab.respiration.pipeline import SurrogateSettings, surrogate_from_frames
from fastap_lab.respiration.placement import Bridge, SequenceSurrogate


def embedding_scorer(embedder, fit_frames: torch.Tensor, reference: torch.Tensor, *,
                     reference_is_frame: bool, adapt: bool, batch_size: int,
                     adapted_on: str = "the gated sequence itself (unlabelled)"):  # fmt: skip
    """A scorer by a checkpoint's embeddings against ``reference``, and its details.

    (``score(frames) -> float64 [B]``, details) with a checkpoint's embedder against
    ``reference`` uint8 [C, H, W]. With ``adapt`` the sequence is embedded with BatchNorm
    statistics re-estimated on ``fit_frames`` uint8 [N, C, H, W] (AdaBN), the reference with the
    checkpoint's own — or with the sequence's when it is one of its frames.
    """
    sequence_embedder, adaptation = embedder, None
    if adapt:
        module = embedder.embed.__self__
        adapted = adapt_batchnorm(module, fit_frames, batch_size, forward=lambda m, x: m.embed(x))
        sequence_embedder = dataclasses.replace(embedder, embed=adapted.embed)
        adaptation = {
            "mode": "adabn", "target": adapted_on, "sequence": "its own BatchNorm statistics",
            "reference": "the sequence's statistics" if reference_is_frame
            else "the checkpoint's statistics (training domain)",
        }  # fmt: skip
    reference_embedder = sequence_embedder if reference_is_frame else embedder
    reference_embedding = embed_images(reference_embedder, reference[None], 1)[0]

    def score(frames: torch.Tensor) -> np.ndarray:
        return cosine_scores(
            reference_embedding, embed_images(sequence_embedder, frames, batch_size)
        )

    return score, {"adaptation": adaptation}


def embedding_scores(embedder, frames: torch.Tensor, reference: torch.Tensor, *,
                     reference_is_frame: bool, adapt: bool, batch_size: int) -> tuple[np.ndarray, dict]:  # fmt: skip
    """Scores of ``frames`` by a checkpoint's embeddings, and their details.

    (scores float64 [N], details) of uint8 ``frames`` [N, C, H, W] (:func:`embedding_scorer`
    fitted on the frames themselves).
    """
    score, details = embedding_scorer(embedder, frames, reference, reference_is_frame=reference_is_frame,
                                      adapt=adapt, batch_size=batch_size)  # fmt: skip
    return score(frames), details


def pixel_features(frames: torch.Tensor, size: int, adapt: bool):
    """A pixel or MIND feature map fitted on ``frames``.

    A ``uint8 [B, C, H, W] -> float [B, P]`` map fitted on ``frames``: standardised pixels
    (:class:`PixelEmbedding`), or MIND descriptors when ``adapt`` (cross-contrast).
    """
    if adapt:
        return lambda images: mind_descriptors(images, size)
    return PixelEmbedding(frames, size, torch.device("cpu"))


def pixel_scorer(fit_frames: torch.Tensor, reference: torch.Tensor, size: int, adapt: bool):
    """A scorer by pixels or MIND against ``reference``, and its details.

    (``score(frames) -> float64 [B]``, details) by pixels / MIND against ``reference``; the
    standardisation comes from ``fit_frames`` uint8 [N, C, H, W].
    """
    features = pixel_features(fit_frames, size, adapt)
    reference_features = features(reference[None])[0]
    kind = "MIND descriptors (standardised)" if adapt else "standardised pixels"
    details = {"features": f"{kind}, {size} px"}
    if not adapt:  # PixelEmbedding standardises already
        return lambda frames: cosine_scores(reference_features, features(frames)), details
    fitted = features(fit_frames)
    mean, std = fitted.mean(0), fitted.std(0).clamp_min(1e-6)
    standardised_reference = (reference_features - mean) / std
    return lambda frames: cosine_scores(
        standardised_reference, (features(frames) - mean) / std
    ), details


def pixel_scores(frames: torch.Tensor, reference: torch.Tensor, size: int, adapt: bool):
    """Scores of ``frames`` by pixels or MIND, and their details.

    (scores float64 [N], details) of ``frames`` against ``reference`` by pixels / MIND
    (:func:`pixel_scorer` fitted on the frames themselves).
    """
    score, details = pixel_scorer(frames, reference, size, adapt)
    return score(frames), details


def surrogate_scores(frames: torch.Tensor, times: torch.Tensor, groups: torch.Tensor,
                     settings: SurrogateSettings, reference: torch.Tensor | int, *,
                     size: int, adapt: bool, target: torch.Tensor | None = None,
                     ) -> tuple[np.ndarray, dict]:  # fmt: skip
    """Closeness of ``frames`` to the reference on their surrogate, and its details.

    (closeness float64 [N], details) on the surrogate of ``frames``; ``reference`` is a
    frame index or an uint8 [C, H, W] image placed on the surrogate — through ``target``
    (uint8 [M, C, H, W], a sequence in the image's contrast) when given.
    """
    bridge = None
    if target is not None and not isinstance(reference, int):
        source = SequenceSurrogate(frames, times, groups, settings)  # its surrogate and placement
        result, bridge = source.result, Bridge(source, target)
    else:
        result = surrogate_from_frames(frames, times, groups, settings)
    surrogate = result.values.numpy()
    details = {"surrogate_component": result.component, "surrogate_band_share": result.band_share}
    if isinstance(reference, int):
        value, how = float(surrogate[reference]), "the reference frame's own surrogate value"
    elif bridge is not None:
        value = bridge.value_of(reference)
        how = ("placed on the target sequence's surrogate (gate.target) and carried over by"
               " matching the two breathing ranges")  # fmt: skip
        details["bridge"] = bridge.record()
    else:
        similarity, placed = pixel_scores(frames, reference, size, adapt)
        value = place_on_surrogate(surrogate, similarity)
        how = f"placed where the frames look most like it ({placed['features']}, kernel average)"
    details.update(reference_surrogate=value, reference_placement=how)
    return surrogate_closeness(surrogate, value), details
