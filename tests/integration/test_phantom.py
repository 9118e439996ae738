"""The procedural breathing phantom on disk (fastap_lab.data.phantom): byte-identical folders in
the frames format, the cache (never trusting an incomplete copy) and the command line. The
in-memory rendering and the settings are in tests/unit/test_phantom_render.py / _spec.py."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastap_lab.data import phantom
from fastap_lab.data.phantom import ensure_phantom, write_phantom
from fastap_lab.data.phantom_sequence import render_phantom
from fastap_lab.data.phantom_spec import PhantomSpec
from tests.unit.test_phantom_render import SMALL


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
