"""Generates the breathing phantom's sequences in memory (deterministic in the spec).

A view of the upper abdomen (``coronal``: body outline, liver under a moving diaphragm dome,
lungs, beating heart, static spine; ``axial``: a slice across the body, see
:mod:`fastap_lab.data.phantom_axial`) follows an irregular respiratory displacement ``d(t)`` in
[0, 1] (0 = end-exhale, 1 = deep inspiration) with a few breath holds at ``hold_position``.
Frames carry the nuisances of real sequences (heartbeat, speckle, noise, gain, gamma, a bias
field, in-plane pose; see ``PhantomSpec.nuisance_mode``), so raw pixels are a weak cue of the
breathing phase while the anatomy still shows it. Frames are labelled 1 where
``|d - hold_position| <= label_tolerance``. Two external queries show the hold position and
end-exhale under a domain shift (other contrast, blur, bias, field of view). With
``target_contrast`` set, a second acquisition of the same patient (same anatomy and breathing
statistics, its own waveform and nuisances) is rendered in that contrast, and so are the queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fastap_lab.data.phantom_axial import make_axial_anatomy, render_axial_scene
from fastap_lab.data.phantom_render import (
    MAIN_CONTRAST,
    QUERY_CONTRAST,
    TARGET_CONTRASTS,
    FrameState,
    add_speckle_and_noise,
    bias_field,
    box_blur,
    make_anatomy,
    render_scene,
    to_uint8,
)
from fastap_lab.data.phantom_spec import PhantomSpec
from fastap_lab.data.phantom_waveform import nuisance_tracks, respiratory_waveform

QUERY_NAMES = ("invivo.png", "invivo_exhale.png")
# One generator per concern, so e.g. more noise never changes the anatomy. Streams are appended
# only at the end: SeedSequence children depend on their index, so earlier streams never change.
STREAMS = ("waveform", "anatomy", "nuisance", "query", "gamma", "target_waveform",
           "target_nuisance", "target_gamma")  # fmt: skip


@dataclass
class PhantomSequence:
    """A generated phantom sequence: frames, displacement, labels, times, queries.

    A generated phantom: frames uint8 [N, H, W], displacement float64 [N] in [0, 1],
    labels int64 [N], times float64 [N] (seconds), queries {file name: (uint8 [H, W], label)},
    breath_holds [(start, end)] in seconds; ``target``: the second sequence (its own
    ``target`` None, no queries) when ``spec.target_contrast`` is set, else None.
    """

    frames: np.ndarray
    displacement: np.ndarray
    labels: np.ndarray
    times: np.ndarray
    queries: dict[str, tuple[np.ndarray, int]]
    breath_holds: list[tuple[float, float]] = field(default_factory=list)
    target: PhantomSequence | None = None


def _streams(spec: PhantomSpec) -> dict[str, np.random.Generator]:
    seeds = np.random.SeedSequence(spec.seed).spawn(len(STREAMS))
    return {name: np.random.default_rng(seed) for name, seed in zip(STREAMS, seeds, strict=True)}


def _anatomy(spec: PhantomSpec, rng: np.random.Generator):
    return make_axial_anatomy(rng) if spec.view == "axial" else make_anatomy(rng)


def _scene(spec: PhantomSpec, anatomy, contrast, state: FrameState) -> np.ndarray:
    travel = 2.0 * spec.diaphragm_travel  # normalised coordinates span 2 units
    render = render_axial_scene if spec.view == "axial" else render_scene
    return render(anatomy, contrast, state, spec.image_size, spec.supersample, travel)


def render_frame(spec: PhantomSpec, displacement: float, nuisance: bool = False) -> np.ndarray:
    """One frame (uint8 [H, W]) of this spec's anatomy at ``displacement``.

    ``nuisance=False`` gives the clean render (no heartbeat, pose, shading or noise); True adds
    one deterministic draw of the sequence's nuisances.
    """
    streams = _streams(spec)
    anatomy = _anatomy(spec, streams["anatomy"])
    if not nuisance:
        return to_uint8(_scene(spec, anatomy, MAIN_CONTRAST, FrameState(float(displacement))))
    tracks = nuisance_tracks(spec, np.zeros(1), streams["nuisance"], streams["gamma"])
    return _noisy_frame(spec, anatomy, MAIN_CONTRAST, tracks, 0, float(displacement),
                        streams["nuisance"])  # fmt: skip


def _noisy_frame(spec, anatomy, contrast, tracks, index, displacement, rng) -> np.ndarray:
    state = FrameState(
        displacement=displacement,
        cardiac=float(tracks.cardiac[index]),
        shift=(float(tracks.shift[index, 0]), float(tracks.shift[index, 1])),
        rotation=float(tracks.rotation[index]),
    )
    image = _scene(spec, anatomy, contrast, state)
    image = image * tracks.gain[index] * bias_field(spec.image_size, tracks.bias[index])
    if spec.gamma_jitter > 0:  # skipped at 0, so the default's pixels stay bit-identical
        image = image ** tracks.gamma[index]
    return to_uint8(add_speckle_and_noise(image, rng, spec.speckle, spec.noise))


def _render_queries(spec: PhantomSpec, anatomy, contrast, rng):
    """Hold position (label 1) and end-exhale (label 0) under one domain shift."""
    shading = bias_field(spec.image_size, np.array([0.3, -0.25, 0.2, 0.15, -0.1]))
    queries = {}
    for name, displacement, label in zip(
        QUERY_NAMES, (spec.hold_position, 0.0), (1, 0), strict=True
    ):
        state = FrameState(displacement, cardiac=0.4, shift=(0.04, -0.03), rotation=0.02,
                           zoom=1.08)  # fmt: skip
        image = box_blur(_scene(spec, anatomy, contrast, state)) * shading
        noisy = add_speckle_and_noise(image, rng, 0.7 * spec.speckle, spec.noise)
        queries[name] = (to_uint8(noisy), label)
    return queries


def _acquire(spec, anatomy, contrast, waveform_rng, nuisance_rng, gamma_rng) -> PhantomSequence:
    """One sequence of ``spec.num_frames`` frames in ``contrast`` (no queries)."""
    times = np.arange(spec.num_frames, dtype=np.float64) / spec.fps
    displacement, holds = respiratory_waveform(spec, times, waveform_rng)
    tracks = nuisance_tracks(spec, times, nuisance_rng, gamma_rng)
    frames = np.stack([
        _noisy_frame(spec, anatomy, contrast, tracks, i, d, nuisance_rng)
        for i, d in enumerate(displacement)
    ])  # fmt: skip
    labels = labels_within_tolerance(displacement, spec.hold_position, spec.label_tolerance)
    return PhantomSequence(frames, displacement, labels, times, {}, holds)


def labels_within_tolerance(
    displacement: np.ndarray, hold_position: float, tolerance: float
) -> np.ndarray:
    """int64 [N]: 1 where |displacement − hold_position| <= tolerance (the boundary counts)."""
    return (np.abs(displacement - hold_position) <= tolerance).astype(np.int64)


def render_phantom(spec: PhantomSpec) -> PhantomSequence:
    """Generates the whole phantom in memory (deterministic in ``spec``)."""
    streams = _streams(spec)
    anatomy = _anatomy(spec, streams["anatomy"])
    sequence = _acquire(spec, anatomy, MAIN_CONTRAST, streams["waveform"],
                        streams["nuisance"], streams["gamma"])  # fmt: skip
    query_contrast = QUERY_CONTRAST
    if spec.target_contrast != "none":
        query_contrast = TARGET_CONTRASTS[spec.target_contrast]
        sequence.target = _acquire(spec, anatomy, query_contrast, streams["target_waveform"],
                                   streams["target_nuisance"], streams["target_gamma"])  # fmt: skip
    sequence.queries = _render_queries(spec, anatomy, query_contrast, streams["query"])
    return sequence


def summarize(sequence: PhantomSequence) -> dict:
    """JSON-ready summary of a phantom sequence.

    JSON-ready summary: frame and positive counts, positive fraction, breath-hold ranges (s);
    with a target sequence, its summary under ``target``.
    """
    summary = {
        "num_frames": int(len(sequence.frames)),
        "num_positives": int(sequence.labels.sum()),
        "positive_fraction": round(float(sequence.labels.mean()), 4),
        "num_breath_holds": len(sequence.breath_holds),
        "breath_holds_s": [[round(s, 3), round(e, 3)] for s, e in sequence.breath_holds],
    }
    if sequence.target is not None:
        summary["target"] = summarize(sequence.target)
    return summary
