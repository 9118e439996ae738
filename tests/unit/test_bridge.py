"""The cross-contrast bridge (respiration/bridge.py) and the surrogate as an embedding
(evaluation/surrogate_embedding.py) on small synthetic breathing sequences with known motion; the
bridge end to end and through evaluate: tests/integration/test_bridge_evaluate.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastap_lab.errors import ConfigError
from fastap_lab.evaluation.embed import pixels_embedder
from fastap_lab.evaluation.surrogate_embedding import bridged_embedder, surrogate_embedder
from fastap_lab.respiration.bridge import (
    _warps,
    align_image,
    breathing_motion,
    field_agreement,
    lucas_kanade,
    range_map,
)
from fastap_lab.respiration.register import apply_shifts

SIDE = 64
CPU = torch.device("cpu")


def anatomy(displacement: float, contrast: str) -> torch.Tensor:
    """float [H, W]: a static body wall and an organ with its own texture that moves down by
    ``displacement`` px as a whole (as the liver does with the diaphragm); ``t2`` inverts the
    organ / body contrast and draws other textures."""
    y, x = torch.meshgrid(torch.arange(SIDE, dtype=torch.float64),
                          torch.arange(SIDE, dtype=torch.float64), indexing="ij")  # fmt: skip
    body = (((y - 32) / 28) ** 2 + ((x - 32) / 24) ** 2 < 1).double()
    moved = y - displacement
    organ = torch.sigmoid(14 - (((x - 34) / 13) ** 2 + ((moved - 38) / 11) ** 2) * 14)
    if contrast == "t1":
        inside, wall = torch.sin(x * 0.6) * torch.cos(moved * 0.45), torch.cos(x * 0.3 + y * 0.2)
        image = 60 * body + (110 + 20 * inside) * organ + 10 * wall * body
    else:
        inside, wall = torch.sin((x + moved) * 0.35), torch.sin(x * y * 0.01)
        image = 150 * body - (80 + 25 * inside) * organ + 15 * wall * body
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


def test_lucas_kanade_measures_a_subpixel_shift_whatever_the_contrast():
    first = anatomy(1.0, "t1")
    second = apply_shifts(first[None], torch.tensor([[-0.6, 0.0]], dtype=torch.float64))[0]
    flow, confidence = lucas_kanade(first, second)
    textured = confidence > confidence.max() * 0.05
    assert float(flow[0][textured].median()) == pytest.approx(0.6, abs=0.1)  # down 0.6 px
    assert float(flow[1][textured].abs().median()) < 0.1
    inverted, _ = lucas_kanade(255 - first, 255 - second)
    assert torch.allclose(inverted, flow, atol=1e-4)  # the contrast's polarity does not matter


def test_breathing_motion_tells_whether_two_contrasts_surrogates_are_oriented_alike():
    d = breathing(48, 4.0, 3.0, 0.0)
    surrogate = d**2  # any monotone function of the motion
    t1 = breathing_motion(sequence(d, "t1")[:, 0].double(), surrogate)
    t2 = breathing_motion(sequence(d, "t2")[:, 0].double(), np.sqrt(surrogate) * 5)
    upside_down = breathing_motion(sequence(d, "t2")[:, 0].double(), -surrogate)
    assert field_agreement(t1, t2) > 0.8
    assert field_agreement(t1, upside_down) < -0.8


def test_range_map_matches_the_breathing_ranges_not_the_time_spent_at_each_position():
    rng = np.random.default_rng(0)
    source = np.concatenate([rng.uniform(0, 1, 500), np.full(300, 0.8)])  # a hold at 0.8
    target = 3.0 * rng.uniform(0, 1, 800) - 2.0  # same range, other scale and offset, no hold
    mapped = range_map(np.array([-2.0, -0.5, 1.0]), target, source)
    low, high = np.quantile(source, [0.01, 0.99])
    expected = low + (np.array([0.0, 0.5, 1.0]) - 0.01) / 0.98 * (high - low)
    assert np.allclose(mapped, expected, atol=0.02)
    assert range_map(np.array([0.7]), source, source)[0] == pytest.approx(0.7)


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


def test_the_surrogate_embedding_ranks_exactly_by_distance_on_the_surrogate():
    d = breathing(64, 4.0, 3.0, 0.3)
    embedder = surrogate_embedder(Frames(sequence(d, "t1"), 4.0), CPU)
    values = embedder.embed.sequence.values
    embeddings = embedder.embed(sequence(d, "t1"))
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(len(d)), atol=1e-6)
    for query in (0, 17, 50):
        by_cosine = (embeddings @ embeddings[query]).double()
        by_distance = -torch.from_numpy(np.abs(values - values[query]))
        # equal order: the angle is affine in the surrogate, the cosine monotone on [0, pi]
        assert torch.equal(by_cosine.argsort(stable=True, descending=True)[:30].sort().values,
                           by_distance.argsort(stable=True, descending=True)[:30].sort().values)  # fmt: skip
    assert embedder.embed.sequence.placed == 0  # frames of the sequence are looked up


def test_the_bridge_refuses_an_embedding_other_than_the_surrogate():
    d = breathing(80, 4.0, 3.0, 0.0)
    pixels = pixels_embedder(sequence(d, "t1"), 32, CPU)
    with pytest.raises(ConfigError, match="needs baseline=surrogate"):
        bridged_embedder(pixels, sequence(d, "t2"), "target")


def _zoomed(image: torch.Tensor) -> np.ndarray:
    """uint8 [H, W]: ``image`` taken in another pose (zoom 1.05, a small rotation)."""
    return _warps(image, [(1.05, 0.03)])[0].round().clamp(0, 255).to(torch.uint8).numpy()
