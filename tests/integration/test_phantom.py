"""Tests of the procedural breathing phantom (fastap_lab.data.phantom)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score

from fastap_lab.data import phantom
from fastap_lab.data.phantom import ensure_phantom, write_phantom
from fastap_lab.data.phantom_sequence import labels_within_tolerance, render_frame, render_phantom
from fastap_lab.data.phantom_spec import PhantomSpec
from fastap_lab.data.phantom_waveform import respiratory_waveform
from fastap_lab.errors import ConfigError

SMALL = {"num_frames": 120, "image_size": 40, "num_breath_holds": 1, "hold_seconds": (6.0, 8.0)}


@pytest.fixture(scope="module")
def small_spec() -> PhantomSpec:
    return PhantomSpec(**SMALL)


@pytest.fixture(scope="module")
def small_sequence(small_spec):
    return render_phantom(small_spec)


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path, small_spec):
    for name in ("a", "b"):
        write_phantom(render_phantom(small_spec), small_spec, tmp_path / name)
    first, second = _file_bytes(tmp_path / "a"), _file_bytes(tmp_path / "b")
    assert len(first) == SMALL["num_frames"] + 5  # frames, 2 queries, 2 CSVs, phantom.json
    assert first == second
    other = render_phantom(PhantomSpec(**{**SMALL, "seed": 1}))
    assert not np.array_equal(other.frames, render_phantom(small_spec).frames)


@pytest.mark.slow
def test_default_spec_is_deterministic():
    first, second = render_phantom(PhantomSpec()), render_phantom(PhantomSpec())
    assert first.frames.shape == (600, 64, 64)
    assert np.array_equal(first.frames, second.frames)
    assert np.array_equal(first.displacement, second.displacement)


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


def test_written_folder_matches_frames_format(tmp_path, small_spec, small_sequence):
    write_phantom(small_sequence, small_spec, tmp_path)
    with open(tmp_path / "labels.csv", newline="") as handle:
        assert handle.readline().strip() == "frame,label,time,video,displacement"
        handle.seek(0)
        rows = list(csv.DictReader(handle))
    assert len(rows) == small_spec.num_frames
    for index, row in enumerate(rows):
        with Image.open(tmp_path / "frames" / row["frame"]) as image:
            assert image.mode == "L" and image.size == (40, 40)
            np.testing.assert_array_equal(np.asarray(image), small_sequence.frames[index])
        assert int(row["label"]) == small_sequence.labels[index]
        assert float(row["time"]) == pytest.approx(index / small_spec.fps)
        assert row["video"] == "phantom"
        assert float(row["displacement"]) == pytest.approx(
            small_sequence.displacement[index], abs=1e-6
        )
    with open(tmp_path / "queries.csv", newline="") as handle:
        queries = {row["query"]: int(row["label"]) for row in csv.DictReader(handle)}
    assert queries == {"invivo.png": 1, "invivo_exhale.png": 0}
    for name in queries:
        with Image.open(tmp_path / "queries" / name) as image:
            assert image.mode == "L" and image.size == (40, 40)
    meta = json.loads((tmp_path / "phantom.json").read_text())
    assert meta["cache_key"] == small_spec.cache_key()
    assert meta["summary"]["positive_fraction"] == pytest.approx(
        small_sequence.labels.mean(), abs=1e-4
    )
    assert len(meta["summary"]["breath_holds_s"]) == 1


def test_ensure_phantom_caches_and_keys_on_parameters(tmp_path, monkeypatch):
    folder = ensure_phantom(tmp_path, **SMALL)
    assert folder == tmp_path / f"phantom-{PhantomSpec(**SMALL).cache_key()}"
    stamp = (folder / "phantom.json").stat().st_mtime_ns
    monkeypatch.setattr(phantom, "render_phantom", _must_not_render)
    assert ensure_phantom(tmp_path, PhantomSpec(**SMALL)) == folder
    assert (folder / "phantom.json").stat().st_mtime_ns == stamp
    monkeypatch.undo()
    other = ensure_phantom(tmp_path, PhantomSpec(**SMALL), seed=5)
    assert other != folder and (other / "phantom.json").is_file()
    assert not list(tmp_path.glob(".tmp-phantom-*"))


def _must_not_render(spec):
    raise AssertionError("a cached phantom was regenerated")


def test_ensure_phantom_does_not_trust_incomplete_folders(tmp_path):
    spec = PhantomSpec(**SMALL)
    final = tmp_path / f"phantom-{spec.cache_key()}"
    (final / "frames").mkdir(parents=True)
    (final / "leftover.txt").write_text("crashed copy")
    leftover_temp = tmp_path / ".tmp-phantom-crashed"
    leftover_temp.mkdir()
    (leftover_temp / "phantom.json").write_text("{}")
    assert ensure_phantom(tmp_path, spec) == final
    assert (final / "phantom.json").is_file() and not (final / "leftover.txt").exists()
    assert len(list((final / "frames").glob("*.png"))) == SMALL["num_frames"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([final.name, leftover_temp.name])


def test_ensure_phantom_uses_the_copy_another_process_finished_first(tmp_path, monkeypatch):
    spec = PhantomSpec(**SMALL)
    real_render = phantom.render_phantom

    def render_while_another_process_finishes(spec_arg):
        monkeypatch.setattr(phantom, "render_phantom", real_render)
        winner = ensure_phantom(tmp_path, spec_arg)  # the "other process" completes first
        (winner / "marker").write_text("winner")
        return real_render(spec_arg)

    monkeypatch.setattr(phantom, "render_phantom", render_while_another_process_finishes)
    folder = ensure_phantom(tmp_path, spec)
    assert (folder / "marker").read_text() == "winner"
    assert not list(tmp_path.glob(".tmp-phantom-*"))


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


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"image_size": 8}, "image_size"),
        ({"num_frames": 5}, "num_frames"),
        ({"label_tolerance": 0.0}, "label_tolerance"),
        ({"hold_position": 1.5}, "hold_position"),
        ({"hold_seconds": (20.0, 200.0)}, "hold_seconds"),
        ({"num_frames": 100}, "num_breath_holds"),
        ({"noise": -0.1}, "noise"),
        ({"view": "sagittal"}, "view"),
        ({"nuisance_mode": "random"}, "nuisance_mode"),
        ({"drift_seconds": 0.0}, "drift_seconds"),
        ({"gamma_jitter": -0.1}, "gamma_jitter"),
        ({"target_contrast": "t1"}, "target_contrast"),
    ],
)
def test_invalid_spec_names_the_field(overrides, field):
    with pytest.raises(ConfigError, match=rf"data\.phantom\.{field}="):
        PhantomSpec(**overrides)


# (field, smallest invalid value, the valid value next to it); holds off so that short
# sequences are valid.
SPEC_LIMITS = [
    ("num_frames", 9, 10),
    ("image_size", 15, 16),
    ("seed", -1, 0),
    ("num_breath_holds", -1, 0),
    ("supersample", 0, 1),
    ("supersample", 9, 8),
    ("fps", 0.0, 1e-6),
    ("cardiac_hz", 0.0, 1e-6),
    ("hold_position", -1e-9, 0.0),
    ("hold_position", 1 + 1e-9, 1.0),
    ("label_tolerance", 0.0, 1e-9),
    ("label_tolerance", 1.0, 1 - 1e-9),
    ("shallow_breath_fraction", 1 + 1e-9, 1.0),
    ("breath_seconds", (0.49, 1.0), (0.5, 0.5)),
    ("breath_seconds", (3.0, 2.9), (3.0, 3.0)),
    ("hold_seconds", (0.0, 1.0), (1e-3, 1e-3)),
    ("hold_seconds", (2.0, 1.9), (2.0, 2.0)),
    ("noise", -1e-9, 0.0),
]


@pytest.mark.parametrize(("field", "invalid", "valid"), SPEC_LIMITS)
def test_spec_limits_are_exact(field, invalid, valid):
    no_holds = {"num_breath_holds": 0}
    assert getattr(PhantomSpec(**{**no_holds, field: valid}), field) == valid
    with pytest.raises(ConfigError, match=rf"data\.phantom\.{field}="):
        PhantomSpec(**{**no_holds, field: invalid})


def test_label_tolerance_includes_its_boundary():
    # Binary fractions: |0.5 − 0.75| and |1.0 − 0.75| are exactly 0.25.
    displacement = np.array([0.5, 0.5 - 2**-20, 0.75, 1.0, 1.0 + 2**-20])
    labels = labels_within_tolerance(displacement, hold_position=0.75, tolerance=0.25)
    assert labels.dtype == np.int64 and labels.tolist() == [1, 0, 1, 1, 0]


def test_unknown_override_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="data.phantom.frames"):
        ensure_phantom(tmp_path, frames=10)


def test_cache_key_is_stable_and_parameter_sensitive():
    assert PhantomSpec().cache_key() == PhantomSpec().cache_key()
    assert len(PhantomSpec().cache_key()) == 12
    assert PhantomSpec(noise=0.05).cache_key() != PhantomSpec().cache_key()


def test_command_line_writes_a_folder(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = [
        "--out",
        str(out),
        "--num-frames",
        "40",
        "--image-size",
        "32",
        "--num-breath-holds",
        "0",
    ]
    assert phantom.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_frames"] == 40 and (out / "phantom.json").is_file()
    assert phantom.main(["--out", str(out), "--image-size", "8"]) == 2
    assert "data.phantom.image_size=8" in capsys.readouterr().err
    assert os.listdir(out / "frames")
