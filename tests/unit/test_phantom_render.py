"""The breathing phantom in memory (unit tier): waveform, labels, holds, the diaphragm's motion,
nuisances and the query images' domain shift."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fastap_lab.data.phantom_sequence import labels_within_tolerance, render_frame, render_phantom
from fastap_lab.data.phantom_spec import PhantomSpec
from fastap_lab.data.phantom_waveform import respiratory_waveform

SMALL = {"num_frames": 120, "image_size": 40, "num_breath_holds": 1, "hold_seconds": (6.0, 8.0)}


@pytest.fixture(scope="module")
def small_spec() -> PhantomSpec:
    return PhantomSpec(**SMALL)


@pytest.fixture(scope="module")
def small_sequence(small_spec):
    return render_phantom(small_spec)


def test_labels_follow_displacement_and_tolerance(small_spec, small_sequence):
    distance = np.abs(small_sequence.displacement - small_spec.hold_position)
    assert small_sequence.labels.dtype == np.int64
    np.testing.assert_array_equal(small_sequence.labels, distance <= small_spec.label_tolerance)
    assert 0.1 < small_sequence.labels.mean() < 0.6
    assert small_sequence.displacement.min() >= 0.0 and small_sequence.displacement.max() <= 1.0
    np.testing.assert_allclose(small_sequence.times, np.arange(120) / small_spec.fps)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_default_waveform_has_requested_positive_fraction_and_holds(seed):
    spec = PhantomSpec(seed=seed)
    times = np.arange(spec.num_frames) / spec.fps
    displacement, _ = respiratory_waveform(spec, times, np.random.default_rng(seed))
    positives = np.abs(displacement - spec.hold_position) <= spec.label_tolerance
    assert 0.2 <= positives.mean() <= 0.4
    assert displacement.max() - displacement.min() > 0.8  # deep and shallow breaths
    runs = _runs_near(displacement, spec.hold_position, 0.02)
    shortest, longest = (s * spec.fps for s in spec.hold_seconds)
    holds = [r for r in runs if r >= shortest - 1]
    assert len(holds) == spec.num_breath_holds
    assert all(r <= longest + 2 for r in holds)


def _runs_near(values: np.ndarray, level: float, tolerance: float) -> list[int]:
    """Lengths of maximal runs of consecutive values within ``tolerance`` of ``level``."""
    lengths, current = [], 0
    for near in np.abs(values - level) <= tolerance:
        if near:
            current += 1
        elif current:
            lengths.append(current)
            current = 0
    return lengths + ([current] if current else [])


def test_hold_segments_match_reported_time_ranges(small_spec, small_sequence):
    ((start, end),) = small_sequence.breath_holds
    assert small_spec.hold_seconds[0] <= end - start <= small_spec.hold_seconds[1]
    inside = (small_sequence.times >= start) & (small_sequence.times <= end)
    held = small_sequence.displacement[inside]
    assert np.all(np.abs(held - small_spec.hold_position) < 0.02)
    assert np.all(small_sequence.labels[inside] == 1)


def _diaphragm_row(image: np.ndarray, column: int) -> float:
    """Sub-pixel row of the strongest dark-to-bright step (lung → liver) going down a column."""
    profile = image[:, column].astype(np.float64)
    steps = np.clip(np.diff(profile), 0, None)
    steps[: len(steps) // 8] = 0  # skip the body outline at the top of the field of view
    peak = int(np.argmax(steps))
    window = np.arange(max(peak - 2, 0), min(peak + 3, len(steps)))
    return float(np.sum(window * steps[window]) / np.sum(steps[window])) + 0.5


def test_diaphragm_moves_down_smoothly_with_displacement():
    # travel pinned: at larger travel the edge detector below meets the vessels in this column
    spec = PhantomSpec(image_size=64, num_breath_holds=0, diaphragm_travel=0.08)
    column = int(0.3 * spec.image_size)  # through the right dome, above the liver
    rows = [_diaphragm_row(render_frame(spec, d), column) for d in np.linspace(0, 1, 11)]
    assert np.all(np.diff(rows) > 0)
    expected_travel = spec.diaphragm_travel * spec.image_size
    assert rows[-1] - rows[0] == pytest.approx(expected_travel, rel=0.2)
    exhale, inhale = render_frame(spec, 0.0), render_frame(spec, 1.0)
    noisy_a, noisy_b = render_frame(spec, 0.5, nuisance=True), render_frame(spec, 0.5)
    assert np.abs(exhale.astype(int) - inhale).mean() > 0.5
    assert not np.array_equal(noisy_a, noisy_b)


def _nearest_neighbour_hits_and_map(frames: np.ndarray, labels: np.ndarray, exclude: int = 2):
    """Cosine retrieval of every positive among frames more than ``exclude`` frames away."""
    flat = frames.reshape(len(frames), -1).astype(np.float64)
    flat /= np.linalg.norm(flat, axis=1, keepdims=True)
    similarity = flat @ flat.T
    index = np.arange(len(flat))
    allowed = np.abs(index[:, None] - index[None, :]) > exclude
    hits, precisions = [], []
    for query in np.flatnonzero(labels == 1):
        scores, relevant = similarity[query][allowed[query]], labels[allowed[query]] == 1
        hits.append(relevant[np.argmax(scores)])
        precisions.append(average_precision_score(relevant, scores))
    return float(np.mean(hits)), float(np.mean(precisions))


def test_nuisances_make_raw_pixels_a_weak_cue_of_the_phase():
    spec = PhantomSpec(num_frames=240, image_size=40, num_breath_holds=2)
    sequence = render_phantom(spec)
    clean = np.stack([render_frame(spec, d) for d in sequence.displacement])
    raw_hit, raw_map = _nearest_neighbour_hits_and_map(sequence.frames, sequence.labels)
    clean_hit, clean_map = _nearest_neighbour_hits_and_map(clean, sequence.labels)
    assert clean_hit > 0.95 and clean_map > 0.9  # the phase is in the anatomy ...
    assert raw_hit < clean_hit - 0.1  # ... but noise, pose and shading hide it from raw pixels
    assert raw_map < clean_map - 0.3


def test_queries_show_hold_and_exhale_under_a_domain_shift(small_spec, small_sequence):
    (hold, hold_label), (exhale, exhale_label) = small_sequence.queries.values()
    assert (hold_label, exhale_label) == (1, 0)
    assert hold.dtype == np.uint8 and hold.shape == (40, 40)
    clean_hold = render_frame(small_spec, small_spec.hold_position).astype(float)
    same_contrast = np.corrcoef(clean_hold.ravel(), small_sequence.frames.mean(0).ravel())[0, 1]
    shifted = np.corrcoef(clean_hold.ravel(), hold.astype(float).ravel())[0, 1]
    assert shifted < same_contrast
    assert np.abs(hold.astype(int) - exhale).mean() > 1.0


def test_label_tolerance_includes_its_boundary():
    # Binary fractions: |0.5 − 0.75| and |1.0 − 0.75| are exactly 0.25.
    displacement = np.array([0.5, 0.5 - 2**-20, 0.75, 1.0, 1.0 + 2**-20])
    labels = labels_within_tolerance(displacement, hold_position=0.75, tolerance=0.25)
    assert labels.dtype == np.int64 and labels.tolist() == [1, 0, 1, 1, 0]
