"""Tests of the phantom presets (conf/data/phantom_*.yaml) and the spec fields behind them."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from fastap_lab.data import phantom
from fastap_lab.data.frames import load_frame_folder
from fastap_lab.data.phantom import write_phantom
from fastap_lab.data.phantom_axial import section
from fastap_lab.data.phantom_render import T2_CONTRAST, FrameState, to_uint8
from fastap_lab.data.phantom_sequence import (
    _anatomy,
    _scene,
    _streams,
    render_frame,
    render_phantom,
)
from fastap_lab.data.phantom_spec import LATER_FIELDS, PhantomSpec
from fastap_lab.data.phantom_waveform import nuisance_tracks
from fastap_lab.data.sources import phantom_root
from tests.unit.test_phantom_render import SMALL, _diaphragm_row

PRESETS = ("phantom_subtle", "phantom_subtle_drift", "phantom_axial", "phantom_crosscontrast")
TINY_PHANTOM = {"num_frames": 60, "image_size": 32, "num_breath_holds": 1,
                "hold_seconds": (4.0, 5.0)}  # fmt: skip
# Recorded with the generator before the presets existed (commit bc343d9): the default phantom
# the recorded experiments used must keep its cache folder and its bytes.
DEFAULT_CACHE_KEY = "330c061d0fc5"
SMALL_FOLDER_SHA256 = "61ef6bf5b5c737c679016de0c6ea72609a0a03b0b6a25ab521679a5f4fcf1cdf"


def _folder_sha256(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _preset_spec(make_cfg, preset: str, **overrides) -> PhantomSpec:
    fields = dict(make_cfg([f"data={preset}"]).data.phantom)
    return PhantomSpec(**{**fields, **overrides})


def test_default_phantom_keeps_its_cache_key_and_bytes(tmp_path):
    assert PhantomSpec().cache_key() == DEFAULT_CACHE_KEY
    spec = PhantomSpec(**SMALL)
    write_phantom(render_phantom(spec), spec, tmp_path)
    assert _folder_sha256(tmp_path) == SMALL_FOLDER_SHA256
    assert set(json.loads((tmp_path / "phantom.json").read_text())["spec"]).isdisjoint(LATER_FIELDS)


@pytest.mark.parametrize("field", LATER_FIELDS)
def test_changing_a_later_field_changes_the_cache_key(field):
    changed = {"view": "axial", "nuisance_mode": "drift", "drift_seconds": 3.0,
               "gamma_jitter": 0.1, "target_contrast": "t2"}[field]  # fmt: skip
    assert PhantomSpec(**{field: changed}).cache_key() != DEFAULT_CACHE_KEY


def test_default_config_composes_to_the_default_spec(make_cfg):
    assert PhantomSpec(**make_cfg(["data=phantom"]).data.phantom) == PhantomSpec()


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_over_the_default_and_changes_only_phantom_fields(make_cfg, preset):
    default, chosen = make_cfg(["data=phantom"]).data, make_cfg([f"data={preset}"]).data
    assert {k: v for k, v in chosen.items() if k != "phantom"} == {
        k: v for k, v in default.items() if k != "phantom"
    }
    changed = {k for k in chosen.phantom if chosen.phantom[k] != default.phantom[k]}
    assert changed and changed <= set(PhantomSpec.__dataclass_fields__)
    assert PhantomSpec(**chosen.phantom).cache_key() != DEFAULT_CACHE_KEY


def test_drift_preset_is_the_subtle_preset_with_drifting_nuisance(make_cfg):
    subtle, drift = (make_cfg([f"data={p}"]).data.phantom for p in PRESETS[:2])
    assert {k for k in drift if drift[k] != subtle[k]} == {"nuisance_mode"}
    assert (subtle.nuisance_mode, drift.nuisance_mode) == ("independent", "drift")


def _read_labels(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _check_labels_follow_displacement(rows: list[dict], spec: PhantomSpec) -> None:
    displacement = np.array([float(r["displacement"]) for r in rows])
    labels = np.array([int(r["label"]) for r in rows])
    distance = np.abs(displacement - spec.hold_position)
    clear = np.abs(distance - spec.label_tolerance) > 1e-5  # 6 decimals written
    np.testing.assert_array_equal(labels[clear], distance[clear] <= spec.label_tolerance)
    assert 0 < labels.sum() < len(labels)


@pytest.mark.parametrize("preset", ["phantom", *PRESETS])
def test_preset_generates_deterministically_with_a_displacement_column(make_cfg, tmp_path, preset):
    spec = _preset_spec(make_cfg, preset, **TINY_PHANTOM)
    for name in ("a", "b"):
        write_phantom(render_phantom(spec), spec, tmp_path / name)
    assert _folder_sha256(tmp_path / "a") == _folder_sha256(tmp_path / "b")
    rows = _read_labels(tmp_path / "a" / "labels.csv")
    assert len(rows) == spec.num_frames
    _check_labels_follow_displacement(rows, spec)
    has_target = (tmp_path / "a" / "target").exists()
    assert has_target == (preset == "phantom_crosscontrast")
    if has_target:
        target_rows = _read_labels(tmp_path / "a" / "target" / "labels.csv")
        assert len(target_rows) == spec.num_frames
        _check_labels_follow_displacement(target_rows, spec)


def test_preset_phantom_is_generated_through_the_data_config(make_cfg, cache_dir):
    fields = {**make_cfg(["data=phantom_subtle_drift"]).data.phantom, **TINY_PHANTOM}
    root = phantom_root(fields, cache_dir)
    assert root.name == f"phantom-{PhantomSpec(**fields).cache_key()}"
    frame_set = load_frame_folder(root, channels=1, image_size=32)
    assert len(frame_set) == TINY_PHANTOM["num_frames"] and frame_set.labels is not None


def _subtle_spec(make_cfg, preset="phantom_subtle") -> PhantomSpec:
    return _preset_spec(make_cfg, preset, num_breath_holds=0)


def test_subtle_preset_moves_the_diaphragm_by_one_to_three_pixels(make_cfg):
    spec = _subtle_spec(make_cfg)
    assert spec.image_size == 64  # the working resolution the 1-3 px refer to
    column = int(0.25 * spec.image_size)  # through the right dome, clear of the vessels
    exhale, hold, inhale = (
        _diaphragm_row(render_frame(spec, d), column) for d in (0.0, spec.hold_position, 1.0)
    )
    assert 1.0 <= inhale - exhale <= 3.2  # full breathing range
    assert 1.0 <= hold - exhale <= inhale - exhale  # what separates label 1 from end-exhale


@pytest.mark.parametrize(("preset", "lag_one"), [("phantom_subtle", (-0.15, 0.15)),
                                                 ("phantom_subtle_drift", (0.9, 1.0))])  # fmt: skip
def test_subtle_nuisance_exceeds_the_breathing_signal(make_cfg, preset, lag_one):
    spec = _subtle_spec(make_cfg, preset)
    times = np.arange(spec.num_frames) / spec.fps
    rng = np.random.default_rng(0)
    tracks = nuisance_tracks(spec, times, rng, np.random.default_rng(1))
    shift_px = tracks.shift / (2.0 / spec.image_size)
    breathing_range_px = spec.diaphragm_travel * spec.image_size  # displacement 0 -> 1
    # the pose alone moves frames more than breathing does: sd per axis > half the full range
    assert np.all(shift_px.std(axis=0) > 0.5 * breathing_range_px)
    assert np.abs(shift_px).max() > breathing_range_px
    assert np.log(tracks.gain).std() > 0.1 and np.log(tracks.gamma).std() > 0.1
    correlation = np.corrcoef(shift_px[1:, 1], shift_px[:-1, 1])[0, 1]
    assert lag_one[0] <= correlation <= lag_one[1]  # drawn per frame vs drifting over seconds


def _axial_frames(make_cfg, displacements, contrast=None) -> list[np.ndarray]:
    spec = _preset_spec(make_cfg, "phantom_axial", num_breath_holds=0)
    if contrast is None:
        return [render_frame(spec, d).astype(float) for d in displacements]
    anatomy = _anatomy(spec, _streams(spec)["anatomy"])
    return [to_uint8(_scene(spec, anatomy, contrast, FrameState(d))) for d in displacements]


def test_axial_breathing_widens_the_body_outline(make_cfg):
    frames = _axial_frames(make_cfg, (0.0, 0.5, 1.0))
    # soft count of body pixels (the fat rim is bright, outside is dark): sub-pixel extents
    body = [np.clip(frame / 60.0, 0.0, 1.0) for frame in frames]
    heights = [mask[:, mask.shape[1] // 2 - 8].sum() for mask in body]  # off the spine column
    widths = [mask[mask.shape[0] // 2].sum() for mask in body]
    assert heights[0] + 0.5 < heights[1] < heights[2] - 0.5  # front-to-back, 4 %: ~1.5 px
    assert widths[0] < widths[2]  # sideways, 2 %


def test_axial_breathing_moves_structures_through_the_slice(make_cfg):
    exhale, inhale = _axial_frames(make_cfg, (0.0, 1.0))
    size = exhale.shape[0]
    inside = np.zeros_like(exhale, dtype=bool)
    inside[size // 4 : -size // 8, size // 8 : -size // 8] = True
    dark = [((frame < 40) & inside).sum() for frame in (exhale, inhale)]  # lung bases
    assert dark[1] > dark[0] + 20  # lung bases come into the slice on inhalation
    assert section((0.0, 0.0, 0.5, 0.2, 0.2, 0.3), 0.0)[2] == 0.0  # below the slice: not cut
    grows = [section((0.0, 0.0, -0.4, 0.2, 0.2, 0.5), shift)[2] for shift in (0.0, 0.2, 0.4)]
    assert grows[0] < grows[1] < grows[2] == pytest.approx(0.2)


def test_crosscontrast_target_is_another_acquisition_in_another_contrast(make_cfg, tmp_path):
    spec = _preset_spec(make_cfg, "phantom_crosscontrast", **TINY_PHANTOM)
    sequence = render_phantom(spec)
    write_phantom(sequence, spec, tmp_path)
    main = load_frame_folder(tmp_path, channels=1, image_size=32)
    target = load_frame_folder(tmp_path / "target", channels=1, image_size=32)
    assert len(main) == len(target) == spec.num_frames  # target/ never mixes into the main set
    assert not np.allclose(sequence.displacement, sequence.target.displacement)
    main_mean = sequence.frames.astype(float).mean(0).ravel()
    target_mean = sequence.target.frames.astype(float).mean(0).ravel()
    assert np.corrcoef(main_mean, target_mean)[0, 1] < 0.8  # tissues remapped, not rescaled
    hold_query = sequence.queries["invivo.png"][0].astype(float).ravel()
    spec_clean = PhantomSpec(**{**spec.__dict__, "target_contrast": "none"})
    clean_main = render_frame(spec_clean, spec.hold_position).astype(float).ravel()
    anatomy = _anatomy(spec, _streams(spec)["anatomy"])
    clean_t2 = _scene(spec, anatomy, T2_CONTRAST, FrameState(spec.hold_position)).ravel()
    assert np.corrcoef(hold_query, clean_t2)[0, 1] > np.corrcoef(hold_query, clean_main)[0, 1]


def test_command_line_sets_any_field(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["--out", str(out), "--num-frames", "40", "--image-size", "32",
            "--num-breath-holds", "0", "--set", "view=axial", "--set", "target_contrast=t2",
            "--set", "breath_seconds=3,4"]  # fmt: skip
    assert phantom.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    recorded = json.loads((out / "phantom.json").read_text())["spec"]
    assert (recorded["view"], recorded["target_contrast"]) == ("axial", "t2")
    assert recorded["breath_seconds"] == [3.0, 4.0]
    assert summary["target"]["num_frames"] == 40
    assert len(list((out / "target" / "frames").glob("*.png"))) == 40


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("view=sagittal", "data.phantom.view=sagittal: must be one of coronal, axial"),
        ("jitter_px=far", "data.phantom.jitter_px=far: not a float"),
        ("hold_seconds=6,x", "data.phantom.hold_seconds=6,x: not a list of numbers"),
        ("colour=red", "data.phantom.colour: unknown phantom parameter"),
    ],
)
def test_command_line_rejects_a_bad_setting_in_one_line(tmp_path, capsys, setting, message):
    assert phantom.main(["--out", str(tmp_path / "x"), "--set", setting]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not (tmp_path / "x").exists()
