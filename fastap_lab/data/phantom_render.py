"""Rendering helpers of the breathing phantom: anatomy, contrast and per-frame nuisances.

Scene coordinates are normalised: ``x`` runs left to right and ``y`` head to feet, both over
[-1, 1] across the field of view (one output pixel is ``2 / size`` units). Shapes are soft
(tanh edges about one output pixel wide) and rendered on a supersampled grid that is then
area-downsampled, so sub-pixel motion of the diaphragm changes the pixels smoothly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Contrast:
    """Tissue intensities in [0, 1] of one imaging contrast, plus a final gamma."""

    background: float = 0.03
    fat: float = 0.72
    soft_tissue: float = 0.36
    lung: float = 0.06
    heart: float = 0.66
    liver: float = 0.5
    vessel: float = 0.88
    stomach: float = 0.2
    kidney: float = 0.58
    spine: float = 0.8
    texture: float = 0.1
    gamma: float = 1.0


MAIN_CONTRAST = Contrast()
# Another sequence of the same patient: black blood (dark heart and vessels), bright fluid in
# the stomach, dim fat and bone, grainier texture.
QUERY_CONTRAST = Contrast(
    fat=0.38, soft_tissue=0.3, lung=0.1, heart=0.2, liver=0.5, vessel=0.12,
    stomach=0.62, kidney=0.66, spine=0.34, texture=0.16, gamma=0.8,
)  # fmt: skip
# A T2-weighted-like sequence: the main contrast's order remapped (bright fluid and kidney, dark
# liver, muscle and flowing blood), coarser texture. `data.phantom.target_contrast=t2`.
T2_CONTRAST = Contrast(
    fat=0.6, soft_tissue=0.18, lung=0.04, heart=0.12, liver=0.26, vessel=0.08,
    stomach=0.92, kidney=0.72, spine=0.3, texture=0.2, gamma=0.75,
)  # fmt: skip
TARGET_CONTRASTS = {"query": QUERY_CONTRAST, "t2": T2_CONTRAST}  # data.phantom.target_contrast


@dataclass(frozen=True)
class Anatomy:
    """Patient-specific layout (drawn once per seed); all values in normalised units.

    Ellipses are ``(center_x, center_y, radius_x, radius_y)``; ``domes`` rows are
    ``(center_x, height, width)``; ``vessels`` rows ``(x0, y0, x1, y1, width)`` are given at
    end-exhale; ``texture`` rows ``(freq_x, freq_y, phase, amplitude)`` are Fourier components.
    """

    body: tuple[float, float, float, float]
    diaphragm_level: float
    domes: np.ndarray  # [2, 3]
    liver: tuple[float, float, float, float]
    stomach: tuple[float, float, float, float]
    kidney: tuple[float, float, float, float]
    heart: tuple[float, float, float, float]
    vessels: np.ndarray  # [K, 5]
    texture: np.ndarray  # [M, 4]


@dataclass(frozen=True)
class FrameState:
    """Everything that changes from frame to frame before noise: breathing, heart, pose."""

    displacement: float
    cardiac: float = 0.0  # heart contraction in [-1, 1]
    shift: tuple[float, float] = (0.0, 0.0)  # camera translation (x, y), normalised units
    rotation: float = 0.0  # radians
    zoom: float = 1.0  # > 1 shows a larger field of view


def random_texture(rng: np.random.Generator, waves: int = 16) -> np.ndarray:
    """Tissue texture as ``waves`` plane waves [waves, 4]: (kx, ky, phase, amplitude)."""
    directions = rng.uniform(0, 2 * np.pi, waves)
    frequencies = rng.uniform(6.0, 22.0, waves)
    return np.column_stack([
        frequencies * np.cos(directions), frequencies * np.sin(directions),
        rng.uniform(0, 2 * np.pi, waves), np.full(waves, np.sqrt(2 / waves)),
    ])  # fmt: skip


def make_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draws a plausible upper-abdomen layout with small patient-to-patient variation."""

    def jitter(values: tuple[float, ...], scale: float = 0.04) -> tuple[float, ...]:
        return tuple(float(v + rng.uniform(-scale, scale)) for v in values)

    hilum = np.array([-0.2, 0.45]) + rng.uniform(-0.05, 0.05, 2)
    angles = np.sort(rng.uniform(-2.6, -1.2, 4))  # fan up and left, toward the dome
    lengths = rng.uniform(0.35, 0.6, 4)
    ends = hilum + lengths[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    widths = rng.uniform(0.025, 0.045, 4)
    vessels = np.column_stack([np.tile(hilum, (4, 1)), ends, widths])
    texture = random_texture(rng)
    return Anatomy(
        body=jitter((0.0, 0.15, 0.88, 1.3), 0.02),
        diaphragm_level=float(rng.uniform(-0.02, 0.04)),
        domes=np.array([jitter((-0.42, 0.38, 0.42)), jitter((0.45, 0.3, 0.36))]),
        liver=jitter((-0.32, 0.28, 0.62, 0.6)),
        stomach=jitter((0.45, 0.3, 0.28, 0.22)),
        kidney=jitter((0.52, 0.78, 0.16, 0.26)),
        heart=jitter((0.1, -0.4, 0.28, 0.21), 0.02),
        vessels=vessels,
        texture=texture,
    )


def _soft_inside(signed_distance: np.ndarray, edge: float) -> np.ndarray:
    """Soft indicator of ``signed_distance < 0`` (tanh cannot overflow, unlike a sigmoid)."""
    return 0.5 - 0.5 * np.tanh(signed_distance / edge)


def _ellipse_distance(x: np.ndarray, y: np.ndarray, ellipse: tuple[float, ...]) -> np.ndarray:
    """Approximate signed distance to an ellipse ``(cx, cy, rx, ry)`` (negative inside)."""
    cx, cy, rx, ry = ellipse
    return (np.hypot((x - cx) / rx, (y - cy) / ry) - 1.0) * min(rx, ry)


def _segment_distance(x: np.ndarray, y: np.ndarray, segment: list[float]) -> np.ndarray:
    """Euclidean distance of every point to the segment ``(x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = segment
    dx, dy = x1 - x0, y1 - y0
    along = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.hypot(x - x0 - along * dx, y - y0 - along * dy)


def diaphragm_height(anatomy: Anatomy, x: np.ndarray, shift: float) -> np.ndarray:
    """Y of the diaphragm at each x: two domes over a baseline lowered by ``shift``."""
    domes = sum(h * np.exp(-(((x - c) / w) ** 2)) for c, h, w in anatomy.domes.tolist())
    return anatomy.diaphragm_level + shift - domes


def _texture(anatomy: Anatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Smooth unit-variance tissue texture, a fixed sum of plane waves."""
    waves = np.zeros_like(x)
    for freq_x, freq_y, phase, amplitude in anatomy.texture.tolist():
        waves += amplitude * np.cos(freq_x * x + freq_y * y + phase)
    return waves


def _over(image: np.ndarray, mask: np.ndarray, value: float | np.ndarray) -> np.ndarray:
    """Paints ``value`` where ``mask`` is 1, blending on soft edges."""
    return image + mask * (value - image)


def _spine(x: np.ndarray, y: np.ndarray, edge: float) -> np.ndarray:
    """Static column of rounded vertebral bodies below the heart (soft mask)."""
    # Only the nearest vertebra matters at each point, so one box distance suffices.
    center_y = 0.42 + 0.2 * np.clip(np.round((y - 0.42) / 0.2), 0, 4)
    qx, qy = np.abs(x) - 0.08, np.abs(y - center_y) - 0.05
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return _soft_inside(outside + np.minimum(np.maximum(qx, qy), 0) - 0.03, edge)


def _abdomen_coordinates(anatomy, x, y, travel_shift, compression):
    """End-exhale coordinates of abdominal tissue: shifted down, compressed toward the feet."""
    top = anatomy.diaphragm_level - float(anatomy.domes[:, 1].max())
    profile = np.clip(1.0 - compression * (y - top) / (1.0 - top), 1.0 - compression, 1.0)
    return x, y - travel_shift * profile


def _paint_abdomen(image, anatomy, contrast, x, y, below, edge):
    """Liver with vessels, stomach and kidney, in end-exhale coordinates ``x, y``."""
    liver = _soft_inside(_ellipse_distance(x, y, anatomy.liver), edge) * below
    vessels = np.zeros_like(x)
    for *segment, width in anatomy.vessels.tolist():
        distance = _segment_distance(x, y, segment)
        vessels = np.maximum(vessels, np.exp(-((distance / width) ** 2)))
    stomach = _soft_inside(_ellipse_distance(x, y, anatomy.stomach), edge) * below
    image = _over(image, liver, contrast.liver)
    image = _over(image, liver * vessels, contrast.vessel)
    image = _over(image, stomach, contrast.stomach)
    return _over(
        image, _soft_inside(_ellipse_distance(x, y, anatomy.kidney), edge), contrast.kidney
    )


def _paint_thorax(image, anatomy, contrast, state, x, y, shift, edge):
    """Lungs above the diaphragm (split by the mediastinum) and the beating heart."""
    cx, cy, rx, ry = anatomy.body
    inner_thorax = (cx, cy, rx - 0.13, ry - 0.1)
    above = _soft_inside(y - diaphragm_height(anatomy, x, shift), edge)
    mediastinum = _soft_inside(np.abs(x - 0.04) - 0.09, edge)
    lungs = _soft_inside(_ellipse_distance(x, y, inner_thorax), edge) * above * (1 - mediastinum)
    image = _over(image, lungs, contrast.lung)
    hx, hy, hrx, hry = anatomy.heart
    beat = 1.0 - 0.1 * state.cardiac  # systole (cardiac = 1) shrinks the heart
    heart = (hx, hy + 0.5 * shift, hrx * beat, hry * beat)
    return _over(image, _soft_inside(_ellipse_distance(x, y, heart), edge), contrast.heart)


def _heart_push(anatomy, x, y, state):
    """Small radial motion of tissue near the heart, induced by its beat."""
    hx, hy = anatomy.heart[0], anatomy.heart[1]
    dx, dy = x - hx, y - hy
    push = 0.012 * state.cardiac * np.exp(-(dx * dx + dy * dy) / 0.25)
    return x + push * dx, y + push * dy


def _camera_grid(n: int, state: FrameState) -> tuple[np.ndarray, np.ndarray]:
    """Scene coordinates (x, y), float32 [n, n], of pixel centres seen by the moved camera."""
    axis = ((np.arange(n) + 0.5) / n * 2.0 - 1.0).astype(np.float32)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    cos, sin = np.float32(np.cos(state.rotation)), np.float32(np.sin(state.rotation))
    zoom = np.float32(state.zoom)
    shift_x, shift_y = np.float32(state.shift[0]), np.float32(state.shift[1])
    return zoom * (cos * x - sin * y) + shift_x, zoom * (sin * x + cos * y) + shift_y


def render_scene(
    anatomy: Anatomy,
    contrast: Contrast,
    state: FrameState,
    size: int,
    supersample: int,
    travel: float,
    compression: float = 0.5,
) -> np.ndarray:
    """Noiseless frame as float64 ``[size, size]`` in [0, 1].

    ``travel`` is the diaphragm's full-range motion (displacement 0 → 1) in normalised units.
    """
    x, y = _heart_push(anatomy, *_camera_grid(size * supersample, state), state)
    edge = 1.0 / size
    shift = travel * state.displacement
    cx, cy, rx, ry = anatomy.body
    chest = (cx, cy, rx * (1.0 + 0.03 * state.displacement), ry)  # chest wall widens on inhale
    body_distance = _ellipse_distance(x, y, chest)
    image = np.full_like(x, contrast.background)
    image = _over(image, _soft_inside(body_distance, edge), contrast.fat)
    image = _over(image, _soft_inside(body_distance + 0.07, edge), contrast.soft_tissue)
    below = 1.0 - _soft_inside(y - diaphragm_height(anatomy, x, shift), edge)
    abdomen_x, abdomen_y = _abdomen_coordinates(anatomy, x, y, shift, compression)
    image = _paint_abdomen(image, anatomy, contrast, abdomen_x, abdomen_y, below, edge)
    image = _paint_thorax(image, anatomy, contrast, state, x, y, shift, edge)
    image = _over(image, _spine(x, y, edge), contrast.spine)
    image = image.reshape(size, supersample, size, supersample).mean(axis=(1, 3))
    # The texture is smooth at the output resolution: evaluating it there saves most of the time.
    coarse_x, coarse_y = _heart_push(anatomy, *_camera_grid(size, state), state)
    coarse_x, coarse_y = _abdomen_coordinates(anatomy, coarse_x, coarse_y, shift, compression)
    image *= 1.0 + contrast.texture * _texture(anatomy, coarse_x, coarse_y)
    return np.clip(image, 0.0, 1.0) ** contrast.gamma


def bias_field(size: int, coefficients: np.ndarray) -> np.ndarray:
    """Smooth multiplicative field ``exp(poly(x, y))``, float64 ``[size, size]``.

    ``coefficients`` [5] weight x, y, x*y, x**2 - 1/3 and y**2 - 1/3 (zero-mean terms, so the
    field changes the shading, not the overall brightness).
    """
    axis = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    y, x = np.meshgrid(axis, axis, indexing="ij")
    terms = np.stack([x, y, x * y, x * x - 1 / 3, y * y - 1 / 3])
    return np.exp(np.tensordot(coefficients, terms, axes=1))


def box_blur(image: np.ndarray, passes: int = 1) -> np.ndarray:
    """3×3 box blur with edge replication, repeated ``passes`` times (float ``[H, W]``)."""
    for _ in range(passes):
        padded = np.pad(image, 1, mode="edge")
        rows = padded[:-2] + padded[1:-1] + padded[2:]
        image = (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) / 9.0
    return image


def add_speckle_and_noise(
    image: np.ndarray, rng: np.random.Generator, speckle: float, noise: float
) -> np.ndarray:
    """Multiplicative speckle (grains about two pixels wide) then additive Gaussian noise."""
    grains = box_blur(rng.standard_normal(image.shape), passes=2)
    grains /= grains.std() + 1e-12
    speckled = image * np.exp(speckle * grains - 0.5 * speckle**2)
    return speckled + noise * rng.standard_normal(image.shape)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] (values outside are clipped) → uint8."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
