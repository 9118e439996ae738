"""The raw-pixel guard's record and console line (fastap_lab/evaluation/guard.py), from metrics
alone; the guard in real runs is tests/integration/test_pixel_guard.py."""

from __future__ import annotations

import pytest

from fastap_lab.evaluation import guard


def test_verdict_line_says_plainly_when_pixels_win():
    guard_record = guard.pixel_record({"mAP": 0.49}, {"mAP": 0.51, "ks": [10]}, 32)
    assert guard_record["beats_pixels"] is False
    assert guard_record["margin"] == pytest.approx(-0.02)
    assert guard_record["pixels"] == {"mAP": 0.51}
    line = guard.verdict_line({"mAP": 0.49}, guard_record)
    assert line.startswith("does NOT beat raw pixels: mAP 0.4900 vs 0.5100 (-0.0200)")
    better = guard.pixel_record(
        {"mAP": 0.6, "precision@10": 0.7}, {"mAP": 0.5, "precision@10": 0.4}, 32
    )
    assert better["beats_pixels"] is True
    assert guard.verdict_line({"mAP": 0.6, "precision@10": 0.7}, better) == (
        "beats raw pixels: mAP 0.6000 vs 0.5000 (+0.1000); P@10 0.7000 vs 0.4000"
    )
    assert guard.pixel_record(None, {"mAP": 0.5}, 32) is None  # no labels: no verdict
