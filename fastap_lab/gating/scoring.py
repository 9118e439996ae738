"""Score every frame of a sequence against the reference, by method (``gate.method``):

- ``embedding``: cosine similarity of a checkpoint's embeddings (``adapt``: the sequence is
  embedded with its own BatchNorm statistics, AdaBN, the reference with the checkpoint's);
- ``pixels``: cosine similarity of standardised downsampled pixels (``adapt``: of MIND
  descriptors) — the plain alternative every learned gate should beat;
- ``surrogate``: closeness on the respiratory surrogate of the sequence; an image reference is
  placed on it by where the frames look most like it (:func:`.scores.place_on_surrogate`).

Glue-free: an embedder is passed in (:class:`fastap_lab.evaluation.embed.Embedder`).
"""

from __future__ import annotations

import numpy as np
import torch

from fastap_lab.evaluation.adapt import adapt_batchnorm
from fastap_lab.evaluation.embed import PixelEmbedding, embed_images
from fastap_lab.gating.scores import (
    cosine_scores,
    mind_descriptors,
    place_on_surrogate,
    standardised_similarity,
    surrogate_closeness,
)
from fastap_lab.respiration.pipeline import SurrogateSettings, surrogate_from_frames


def embedding_scores(embedder, frames: torch.Tensor, reference: torch.Tensor, *,
                     reference_is_frame: bool, adapt: bool, batch_size: int) -> tuple[np.ndarray, dict]:  # fmt: skip
    """(scores float64 [N], details) of uint8 ``frames`` [N, C, H, W] against ``reference``
    uint8 [C, H, W] with a checkpoint's embedder."""
    sequence_embedder, details = embedder, {"adaptation": None}
    if adapt:
        module = embedder.embed.__self__
        adapted = adapt_batchnorm(module, frames, batch_size, forward=lambda m, x: m.embed(x))
        sequence_embedder = type(embedder)(**{**embedder.__dict__, "embed": adapted.embed})
        details["adaptation"] = {
            "mode": "adabn", "target": "the gated sequence itself (unlabelled)",
            "sequence": "its own BatchNorm statistics",
            "reference": "the sequence's statistics" if reference_is_frame
            else "the checkpoint's statistics (training domain)",
        }  # fmt: skip
    reference_embedder = sequence_embedder if reference_is_frame else embedder
    embeddings = embed_images(sequence_embedder, frames, batch_size)
    reference_embedding = embed_images(reference_embedder, reference[None], 1)[0]
    return cosine_scores(reference_embedding, embeddings), details


def pixel_features(frames: torch.Tensor, size: int, adapt: bool):
    """A ``uint8 [B, C, H, W] -> float [B, P]`` map fitted on ``frames``: standardised pixels
    (:class:`PixelEmbedding`), or MIND descriptors when ``adapt`` (cross-contrast)."""
    if adapt:
        return lambda images: mind_descriptors(images, size)
    return PixelEmbedding(frames, size, torch.device("cpu"))


def pixel_scores(frames: torch.Tensor, reference: torch.Tensor, size: int, adapt: bool):
    """(scores float64 [N], details) of ``frames`` against ``reference`` by pixels / MIND."""
    features = pixel_features(frames, size, adapt)
    frame_features, reference_features = features(frames), features(reference[None])[0]
    if adapt:
        scores = standardised_similarity(reference_features, frame_features)
    else:
        scores = cosine_scores(reference_features, frame_features)
    kind = "MIND descriptors (standardised)" if adapt else "standardised pixels"
    return scores, {"features": f"{kind}, {size} px"}


def surrogate_scores(frames: torch.Tensor, times: torch.Tensor, groups: torch.Tensor,
                     settings: SurrogateSettings, reference: torch.Tensor | int, *,
                     size: int, adapt: bool) -> tuple[np.ndarray, dict]:  # fmt: skip
    """(closeness float64 [N], details) on the surrogate of ``frames``; ``reference`` is a
    frame index or an uint8 [C, H, W] image placed on the surrogate."""
    result = surrogate_from_frames(frames, times, groups, settings)
    surrogate = result.values.numpy()
    details = {"surrogate_component": result.component, "surrogate_band_share": result.band_share}
    if isinstance(reference, int):
        value, how = float(surrogate[reference]), "the reference frame's own surrogate value"
    else:
        similarity, placed = pixel_scores(frames, reference, size, adapt)
        value = place_on_surrogate(surrogate, similarity)
        how = f"placed where the frames look most like it ({placed['features']}, kernel average)"
    details.update(reference_surrogate=value, reference_placement=how)
    details["surrogate"] = surrogate
    return surrogate_closeness(surrogate, value), details
