"""The cross-contrast bridge (respiration/bridge.py) and the surrogate as an embedding
(evaluation/surrogate_embedding.py), on synthetic breathing sequences with known motion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastap_lab.errors import ConfigError
from fastap_lab.evaluation.embed import pixels_embedder
from fastap_lab.evaluation.surrogate_embedding import (
    SurrogateEmbedding,
    bridged_embedder,
    surrogate_embedder,
)
from fastap_lab.respiration.bridge import (
    _warps,
    align_image,
    field_agreement,
    lucas_kanade,
    pixel_calibration,
)
from fastap_lab.respiration.register import apply_shifts

SIDE = 64
CPU = torch.device("cpu")


def anatomy(displacement: float, contrast: str) -> torch.Tensor:
    """float [H, W]: a body outline, an organ whose upper edge moves down by ``displacement`` px
    and a fixed texture; ``t2`` inverts the organ / body contrast and changes the texture."""
    y, x = torch.meshgrid(torch.arange(SIDE, dtype=torch.float64),
                          torch.arange(SIDE, dtype=torch.float64), indexing="ij")  # fmt: skip
    body = (((y - 32) / 28) ** 2 + ((x - 32) / 24) ** 2 < 1).double()
    edge = 30.0 + displacement
    organ = torch.sigmoid((y - edge) * 1.5) * (((x - 32) / 14) ** 2 + ((y - 44) / 16) ** 2 < 1)
    texture = torch.sin(x * 0.7) * torch.cos(y * 0.5) if contrast == "t1" else torch.sin(x * y * 0.01)
    if contrast == "t1":
        image = 60 * body + 120 * organ + 10 * texture * body
    else:
        image = 150 * body - 90 * organ + 15 * texture * body
    return image.clamp(min=0) + 5


def breathing(n: int, fps: float, amplitude: float, phase: float, hold=None) -> np.ndarray:
    """Displacement px [n]: 0 at end-exhale, ``amplitude`` at end-inhale, 0.25 Hz, with an
    optional (start, stop, level) breath-hold."""
    t = np.arange(n) / fps
    d = amplitude * (1 - np.cos(2 * math.pi * 0.25 * t + phase)) / 2
    if hold:
        d[hold[0] : hold[1]] = hold[2]
    return d


def sequence(displacements: np.ndarray, contrast: str) -> torch.Tensor:
    """uint8 [N, 1, H, W] of :func:`anatomy`."""
    frames = torch.stack([anatomy(float(d), contrast) for d in displacements])
    return frames.round().clamp(0, 255).to(torch.uint8)[:, None]


class Frames:
    """The FrameSet fields the surrogate embedder reads."""

    def __init__(self, images: torch.Tensor, fps: float) -> None:
        self.images = images
        self.times = torch.arange(images.shape[0], dtype=torch.float64) / fps
        self.groups = torch.zeros(images.shape[0], dtype=torch.int64)


@pytest.mark.unit
def test_lucas_kanade_measures_a_subpixel_shift_whatever_the_contrast():
    first = anatomy(1.0, "t1")
    second = apply_shifts(first[None], torch.tensor([[-0.6, 0.0]], dtype=torch.float64))[0]
    flow, confidence = lucas_kanade(first, second)
    textured = confidence > confidence.max() * 0.05
    assert float(flow[0][textured].median()) == pytest.approx(0.6, abs=0.1)  # down 0.6 px
    assert float(flow[1][textured].abs().median()) < 0.1
    inverted, _ = lucas_kanade(255 - first, 255 - second)
    assert torch.allclose(inverted, flow, atol=1e-4)  # the contrast's polarity does not matter


@pytest.mark.unit
def test_pixel_calibration_recovers_pixels_from_a_nonlinear_surrogate_and_its_orientation():
    d = breathing(160, 4.0, 3.0, 0.0)
    frames = sequence(d, "t1")[:, 0].double()
    surrogate = d**2  # monotone, far from linear
    calibration = pixel_calibration(frames, surrogate)
    pixels = calibration.to_pixels(surrogate)
    assert abs(calibration.range_px - 3.0) < 0.8
    assert np.corrcoef(pixels, d)[0, 1] > 0.99 > np.corrcoef(surrogate, d)[0, 1]
    assert np.allclose(calibration.from_pixels(calibration.to_pixels(surrogate)), surrogate,
                       atol=0.05 * surrogate.max())  # fmt: skip
    other = pixel_calibration(sequence(d, "t2")[:, 0].double(), surrogate)
    upside_down = pixel_calibration(sequence(d, "t2")[:, 0].double(), -surrogate)
    assert field_agreement(calibration, other) > 0.8
    assert field_agreement(calibration, upside_down) < -0.8


@pytest.mark.unit
def test_align_image_undoes_a_zoom_rotation_and_shift():
    reference = anatomy(1.0, "t2")
    moved = torch.roll(_warps(reference, [(1.075, -0.04)])[0].double(), (2, -1), (0, 1))
    aligned, found = align_image(moved, reference)
    assert found.scale == pytest.approx(1 / 1.075, abs=0.03)
    assert found.rotation == pytest.approx(0.04, abs=0.021)
    assert found.correlation > 0.95
    inner = slice(8, -8)
    before = (moved - reference)[inner, inner].abs().mean()
    assert (aligned - reference)[inner, inner].abs().mean() < 0.5 * before


@pytest.mark.unit
def test_the_surrogate_embedding_ranks_exactly_by_distance_on_the_surrogate():
    d = breathing(120, 4.0, 3.0, 0.3)
    embedder = surrogate_embedder(Frames(sequence(d, "t1"), 4.0), CPU)
    values = embedder.embed.sequence.values
    embeddings = embedder.embed(sequence(d, "t1"))
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(len(d)), atol=1e-6)
    for query in (0, 17, 60):
        by_cosine = (embeddings @ embeddings[query]).double()
        by_distance = -torch.from_numpy(np.abs(values - values[query]))
        # equal order: the angle is affine in the surrogate, the cosine monotone on [0, pi]
        assert torch.equal(by_cosine.argsort(stable=True, descending=True)[:30].sort().values,
                           by_distance.argsort(stable=True, descending=True)[:30].sort().values)  # fmt: skip
    assert embedder.embed.sequence.placed == 0  # frames of the sequence are looked up


def test_a_query_of_another_contrast_is_bridged_to_its_breathing_position():
    fps = 4.0
    gallery_d = breathing(240, fps, 3.0, 0.0, hold=(100, 140, 2.4))
    target_d = breathing(200, fps, 3.0, 1.3, hold=(20, 44, 0.3))  # other realisation and hold
    gallery = surrogate_embedder(Frames(sequence(gallery_d, "t1"), fps), CPU)
    bridged, record = bridged_embedder(gallery, sequence(target_d, "t2"), "target")
    assert abs(record["orientation_agreement"]) > 0.8
    assert record["breathing_range_px"]["target"] == pytest.approx(
        record["breathing_range_px"]["gallery"], rel=0.3
    )
    gallery_embeddings = gallery.embed(sequence(gallery_d, "t1"))
    for position in (0.3, 1.5, 2.4):
        query = torch.from_numpy(_zoomed(anatomy(position, "t2")))[None, None]
        top = (gallery_embeddings @ bridged.embed(query)[0]).argsort(descending=True)[:10]
        assert np.abs(gallery_d[top.numpy()] - position).mean() < 0.45, position
    pixels = pixels_embedder(sequence(gallery_d, "t1"), 32, CPU)
    query = torch.from_numpy(_zoomed(anatomy(2.4, "t2")))[None, None]
    top = (pixels.embed(sequence(gallery_d, "t1")) @ pixels.embed(query)[0]).argsort()[-10:]
    assert np.abs(gallery_d[top.numpy()] - 2.4).mean() > 0.45  # raw pixels cannot do this


def _zoomed(image: torch.Tensor) -> np.ndarray:
    """uint8 [H, W]: ``image`` taken in another pose (zoom 1.05, a small rotation)."""
    return _warps(image, [(1.05, 0.03)])[0].round().clamp(0, 255).to(torch.uint8).numpy()


def test_bridge_and_adabn_refuse_the_wrong_embedding():
    d = breathing(80, 4.0, 3.0, 0.0)
    pixels = pixels_embedder(sequence(d, "t1"), 32, CPU)
    with pytest.raises(ConfigError, match="needs baseline=surrogate"):
        bridged_embedder(pixels, sequence(d, "t2"), "target")
    assert isinstance(surrogate_embedder(Frames(sequence(d, "t1"), 4.0), CPU).embed,
                      SurrogateEmbedding)  # fmt: skip
