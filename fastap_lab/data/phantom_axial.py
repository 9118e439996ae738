"""Axial view of the breathing phantom (``data.phantom.view=axial``): a slice across the body.

Coordinates are normalised over [-1, 1]: ``x`` left to right (the patient's right on the image
left, as radiology displays it), ``y`` front (top) to back, ``z`` head to feet; the slice is
``z = 0``. Organs are ellipsoids that move toward the feet by ``travel * displacement *
follow`` on inhalation, so their cross-sections appear, grow, shrink and vanish as they pass
through the slice (lung bases and heart come in, kidneys and spleen go out, the liver narrows
toward its dome). The body outline expands front-to-back and sideways (the back lies still on
the table) and the abdominal contents follow that expansion; spine and aorta stay put. Shapes are
soft and supersampled as in :mod:`fastap_lab.data.phantom_render`, whose contrasts apply here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastap_lab.data.phantom_render import (
    Contrast,
    FrameState,
    _camera_grid,
    _ellipse_distance,
    _over,
    _soft_inside,
    _texture,
    random_texture,
)

# Expansion of the body at full inhalation per unit of through-slice travel (front-to-back,
# sideways): the default travel (0.3 units) widens the body 6 % front-to-back and 3 % sideways.
EXPANSION_PER_TRAVEL = (0.2, 0.1)
# name: (tissue, ellipsoid (cx, cy, cz, rx, ry, rz) at end-exhale, follow). ``follow`` scales the
# organ's share of the breathing motion; lungs and heart are drawn last (they lie above the
# abdomen and reach into the slice's back corners and front).
ORGANS = {
    "liver": ("liver", (-0.33, -0.02, 0.15, 0.46, 0.42, 0.55), 1.0),
    "stomach": ("stomach", (0.33, -0.2, 0.05, 0.24, 0.2, 0.3), 0.8),
    "spleen": ("kidney", (0.52, 0.2, 0.1, 0.14, 0.2, 0.28), 0.9),
    "right_kidney": ("kidney", (-0.36, 0.38, 0.28, 0.13, 0.16, 0.34), 0.6),
    "left_kidney": ("kidney", (0.36, 0.38, 0.36, 0.13, 0.16, 0.34), 0.6),
    "right_lung": ("lung", (-0.5, 0.3, -0.5, 0.27, 0.24, 0.5), 1.0),
    "left_lung": ("lung", (0.52, 0.3, -0.5, 0.25, 0.24, 0.5), 1.0),
    "heart": ("heart", (0.12, -0.36, -0.5, 0.26, 0.2, 0.42), 0.5),
}
NUM_LIVER_VESSELS = 6


@dataclass(frozen=True)
class AxialAnatomy:
    """Patient layout of the axial view, normalised units (drawn once per seed).

    ``body`` is the outline ellipse ``(cx, cy, rx, ry)`` at end-exhale; ``organs`` maps a name of
    ``ORGANS`` to its ellipsoid ``(cx, cy, cz, rx, ry, rz)``; ``vessels`` [K, 6] are small
    ellipsoids inside the liver (portal and hepatic branches crossing the slice); ``texture``
    rows ``(freq_x, freq_y, phase, amplitude)`` as in the coronal anatomy.
    """

    body: tuple[float, float, float, float]
    organs: dict[str, tuple[float, ...]]
    vessels: np.ndarray  # [K, 6]
    texture: np.ndarray  # [M, 4]


def make_axial_anatomy(rng: np.random.Generator) -> AxialAnatomy:
    """Draws a plausible upper-abdomen slice with small patient-to-patient variation."""
    organs = {
        name: tuple(float(v + rng.uniform(-0.03, 0.03)) for v in ellipsoid)
        for name, (_, ellipsoid, _) in ORGANS.items()
    }
    cx, cy, _, rx, ry, _ = organs["liver"]
    angles = rng.uniform(0, 2 * np.pi, NUM_LIVER_VESSELS)
    radii = rng.uniform(0.15, 0.7, NUM_LIVER_VESSELS)
    vessels = np.column_stack([
        cx + radii * rx * np.cos(angles), cy + radii * ry * np.sin(angles),
        rng.uniform(-0.3, 0.45, NUM_LIVER_VESSELS),  # depths: they cross at different phases
        np.repeat(rng.uniform(0.03, 0.055, NUM_LIVER_VESSELS)[:, None], 2, axis=1),
        rng.uniform(0.12, 0.22, NUM_LIVER_VESSELS),
    ])  # fmt: skip
    texture = random_texture(rng)
    body = tuple(float(v + rng.uniform(-0.02, 0.02)) for v in (0.0, 0.02, 0.86, 0.6))
    return AxialAnatomy(body=body, organs=organs, vessels=vessels, texture=texture)


def section(ellipsoid: tuple[float, ...], z_shift: float) -> tuple[float, float, float, float]:
    """Cross-section of a moved ellipsoid with the slice z = 0.

    Cross-section ``(cx, cy, rx, ry)`` with the slice z = 0 of an ellipsoid moved by
    ``z_shift`` toward the feet; radii 0 when it misses the slice.
    """
    cx, cy, cz, rx, ry, rz = ellipsoid
    scale = np.sqrt(max(0.0, 1.0 - ((cz + z_shift) / rz) ** 2))
    return cx, cy, rx * scale, ry * scale


def _soft_ellipse(x, y, ellipse, edge) -> np.ndarray:
    """Soft mask of an ellipse ``(cx, cy, rx, ry)``; empty when a radius is (nearly) 0."""
    if min(ellipse[2], ellipse[3]) < 1e-3:
        return np.zeros_like(x)
    return _soft_inside(_ellipse_distance(x, y, ellipse), edge)


def _expanded_coordinates(anatomy, x, y, displacement, travel):
    """End-exhale coordinates of body tissue seen at (x, y) when the body has expanded."""
    front_back, sideways = (ratio * travel * displacement for ratio in EXPANSION_PER_TRAVEL)
    back = anatomy.body[1] + anatomy.body[3]  # the back stays on the table
    return x / (1.0 + sideways), back + (y - back) / (1.0 + front_back)


def _paint_organs(image, anatomy, contrast, state, x, y, travel, edge):
    """Organ cross-sections (liver vessels inside the liver), in end-exhale coordinates."""
    for name, (tissue, _, follow) in ORGANS.items():
        cx, cy, rx, ry = section(anatomy.organs[name], travel * state.displacement * follow)
        if name == "heart":  # systole (cardiac = 1) shrinks the heart
            beat = 1.0 - 0.1 * state.cardiac
            rx, ry = rx * beat, ry * beat
        mask = _soft_ellipse(x, y, (cx, cy, rx, ry), edge)
        image = _over(image, mask, getattr(contrast, tissue))
        if name == "liver":
            image = _paint_liver_vessels(image, anatomy, contrast, x, y, mask, state, travel, edge)
    return image


def _paint_liver_vessels(image, anatomy, contrast, x, y, liver, state, travel, edge):
    vessels = np.zeros_like(x)
    for vessel in anatomy.vessels.tolist():
        ellipse = section(tuple(vessel), travel * state.displacement)
        vessels = np.maximum(vessels, _soft_ellipse(x, y, ellipse, edge))
    return _over(image, vessels * liver, contrast.vessel)


def _paint_static(image, contrast, x, y, edge):
    """Spine (vertebral body, canal, posterior arch) and aorta: fixed to the table."""
    image = _over(image, _soft_ellipse(x, y, (0.06, 0.25, 0.05, 0.05), edge), contrast.vessel)
    image = _over(image, _soft_ellipse(x, y, (0.0, 0.38, 0.1, 0.085), edge), contrast.spine)
    image = _over(image, _soft_ellipse(x, y, (0.0, 0.54, 0.12, 0.045), edge), contrast.spine)
    return _over(image, _soft_ellipse(x, y, (0.0, 0.5, 0.035, 0.035), edge), contrast.background)


def render_axial_scene(
    anatomy: AxialAnatomy,
    contrast: Contrast,
    state: FrameState,
    size: int,
    supersample: int,
    travel: float,
) -> np.ndarray:
    """Noiseless axial frame as float64 ``[size, size]`` in [0, 1].

    ``travel`` is the organs' full-range through-slice motion (displacement 0 → 1) in
    normalised units; the body expansion scales with it (``EXPANSION_PER_TRAVEL``).
    """
    x, y = _camera_grid(size * supersample, state)
    edge = 1.0 / size
    body_x, body_y = _expanded_coordinates(anatomy, x, y, state.displacement, travel)
    body_distance = _ellipse_distance(body_x, body_y, anatomy.body)
    image = np.full_like(x, contrast.background)
    image = _over(image, _soft_inside(body_distance, edge), contrast.fat)
    image = _over(image, _soft_inside(body_distance + 0.07, edge), contrast.soft_tissue)
    image = _paint_organs(image, anatomy, contrast, state, body_x, body_y, travel, edge)
    image = _paint_static(image, contrast, x, y, edge)
    image = image.reshape(size, supersample, size, supersample).mean(axis=(1, 3))
    # As in the coronal view, the smooth texture is evaluated at the output resolution.
    coarse_x, coarse_y = _camera_grid(size, state)
    coarse_x, coarse_y = _expanded_coordinates(anatomy, coarse_x, coarse_y,
                                               state.displacement, travel)  # fmt: skip
    image *= 1.0 + contrast.texture * _texture(anatomy, coarse_x, coarse_y)
    return np.clip(image, 0.0, 1.0) ** contrast.gamma
