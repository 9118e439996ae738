"""Gating core: smoothing, thresholds, hysteresis, windows, scores, agreement (unit tier)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support

from fastap_lab.errors import ConfigError, DataError
from fastap_lab.gating.agreement import displacement_agreement, label_agreement
from fastap_lab.gating.scores import (
    breathing_span,
    mind_descriptors,
    place_on_surrogate,
    surrogate_closeness,
)
from fastap_lab.gating.sequence import in_frames, segments_of
from fastap_lab.gating.trace import (
    TraceSettings,
    check_trace_settings,
    drop_short_windows,
    gate_trace,
    hysteresis_gate,
    log_distance_otsu,
    moving_average,
    otsu_threshold,
)


def test_moving_average_equals_the_window_mean_and_shrinks_at_the_ends():
    values = np.random.default_rng(1).normal(size=20)
    smoothed = moving_average(values, 5)
    for i in range(20):
        assert smoothed[i] == pytest.approx(values[max(i - 2, 0) : i + 3].mean())
    assert np.array_equal(moving_average(values, 1), values)


def test_sequence_shorter_than_the_window_is_one_line():
    with pytest.raises(DataError, match="shorter than the smoothing window"):
        moving_average(np.zeros(4), 5)


def test_otsu_splits_two_clusters_between_them():
    rng = np.random.default_rng(2)
    values = np.concatenate([rng.normal(0, 0.1, 300), rng.normal(3, 0.1, 100)])
    threshold = otsu_threshold(values)
    assert 0.5 < threshold < 2.5
    assert otsu_threshold(np.full(5, 2.0)) == 2.0


def test_log_distance_otsu_finds_the_near_cluster_that_plain_otsu_misses():
    # 25 % of frames at the reference (distance ~0.005), the rest spread far away: plain Otsu
    # cuts through the far frames, the log-distance cut sits between near and far.
    rng = np.random.default_rng(3)
    near = 1 - rng.uniform(0.002, 0.01, 100)
    far = 1 - rng.uniform(0.1, 1.0, 300)
    scores = np.concatenate([near, far])
    threshold = log_distance_otsu(scores)
    assert (scores >= threshold).sum() == 100
    assert (scores >= otsu_threshold(scores)).sum() > 100


def test_duty_cycle_gates_that_share():
    scores = np.linspace(0, 1, 100)
    trace = gate_trace(scores, TraceSettings(duty_cycle=0.3))
    assert trace.gated.sum() == 30 and trace.gated[-30:].all()
    assert "duty cycle" in trace.how


def test_hysteresis_stays_in_until_the_lower_level():
    smoothed = np.array([0.0, 0.6, 0.45, 0.42, 0.3, 0.45, 0.6])
    assert hysteresis_gate(smoothed, 0.5, 0.0).tolist() == [0, 1, 0, 0, 0, 0, 1]
    assert hysteresis_gate(smoothed, 0.5, 0.1).tolist() == [0, 1, 1, 1, 0, 0, 1]


def test_short_windows_are_dropped():
    gated = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0], dtype=bool)
    assert drop_short_windows(gated, 3).tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 0]
    assert drop_short_windows(gated, 1).tolist() == gated.tolist()


def test_smoothing_never_crosses_recordings():
    scores = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    times = np.array([0.0, 1.0, 2.0, 0.0, 1.0, 2.0])
    groups = np.array([0, 0, 0, 1, 1, 1])
    trace = gate_trace(scores, TraceSettings(smooth_frames=3), segments_of(times, groups))
    assert trace.smoothed.tolist() == scores.tolist()
    joined = gate_trace(scores, TraceSettings(smooth_frames=3))
    assert joined.smoothed[2] == pytest.approx(1 / 3)


def test_segments_follow_time_not_row_order():
    times, groups = np.array([2.0, 0.0, 1.0]), np.zeros(3, dtype=np.int64)
    assert segments_of(times, groups)[0].tolist() == [1, 2, 0]
    assert in_frames(0.5, 4.0, odd=True) == 3 and in_frames(0.0, 4.0) == 1


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"threshold": "high"}, "gate.threshold"),
        ({"duty_cycle": 1.0}, "gate.duty_cycle"),
        ({"duty_cycle": 0}, "gate.duty_cycle"),
        ({"duty_cycle": 0.3, "threshold": 0.5}, "give one of them"),
        ({"smooth_seconds": -1}, "gate.smooth_seconds"),
        ({"hysteresis": -0.1}, "gate.hysteresis"),
        ({"min_window_seconds": "x"}, "gate.min_window_seconds"),
    ],
)
def test_out_of_range_settings_are_refused(values, field):
    with pytest.raises(ConfigError, match=field):
        check_trace_settings(values)


def test_label_agreement_equals_scikit_learn():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 200)
    gated = rng.random(200) < 0.4
    record = label_agreement(gated, labels, positive=2)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels == 2, gated, average="binary", zero_division=0
    )
    assert (record["precision"], record["recall"], record["f1"]) == pytest.approx(
        (precision, recall, f1)
    )
    assert label_agreement(np.zeros(5, bool), np.ones(5, int), 1)["f1"] == 0.0


def test_displacement_agreement():
    displacement = np.linspace(0, 1, 101)
    smoothed = -np.abs(displacement - 0.7) * 2 + 1
    gated = np.abs(displacement - 0.7) <= 0.1
    record = displacement_agreement(smoothed, gated, displacement, 0.7)
    assert record["abs_pearson_r"] == pytest.approx(1.0)
    assert record["error_mean"] == pytest.approx(np.abs(displacement[gated] - 0.7).mean())
    assert record["error_p95_share"] == pytest.approx(record["error_p95"] / 1.0)
    assert "error_mean" not in displacement_agreement(
        smoothed, ~np.ones(101, bool), displacement, 0.7
    )


def test_surrogate_closeness_is_one_at_the_reference_and_falls_with_the_span():
    surrogate = np.sin(np.linspace(0, 20, 500))
    closeness = surrogate_closeness(surrogate, 0.5)
    span = breathing_span(surrogate)
    assert closeness.max() <= 1.0
    assert closeness[np.argmin(np.abs(surrogate - 0.5))] == pytest.approx(1.0, abs=0.02)
    assert closeness == pytest.approx(1 - np.abs(surrogate - 0.5) / span)


def test_place_on_surrogate_finds_where_frames_look_alike_despite_noise():
    rng = np.random.default_rng(5)
    surrogate = np.sin(np.linspace(0, 30, 1200))
    similarity = np.exp(-(((surrogate - 0.4) / 0.2) ** 2)) + rng.normal(0, 0.5, 1200)
    assert place_on_surrogate(surrogate, similarity) == pytest.approx(0.4, abs=0.1)


def test_mind_ignores_gain_and_offset_but_not_structure():
    rng = np.random.default_rng(6)
    image = torch.from_numpy(rng.integers(20, 100, (1, 1, 32, 32), dtype=np.uint8))
    brighter = (image.float() * 2 + 30).to(torch.uint8)
    moved = torch.roll(image, 3, dims=3)
    base = mind_descriptors(image, 32)
    assert base.shape == (1, 8 * 32 * 32)
    torch.testing.assert_close(mind_descriptors(brighter, 32), base, atol=1e-3, rtol=0)
    assert (mind_descriptors(moved, 32) - base).abs().mean() > 0.05
