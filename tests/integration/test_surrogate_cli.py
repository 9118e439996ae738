"""python -m fastap_lab.surrogate: outputs, config options, bad input."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastap_lab.errors import ConfigError, DataError
from fastap_lab.respiratory_config import settings_from
from fastap_lab.surrogate import surrogate

SMALL = [
    "data.phantom.num_frames=200",
    "data.phantom.image_size=32",
    "data.phantom.num_breath_holds=1",
    "data.phantom.hold_seconds=[5.0,7.0]",
    "data.image_size=32",  # after the runner's data.image_size=24 (the test folders' size)
]


@pytest.fixture
def run(make_cfg, tmp_path):
    """``run(overrides) -> surrogate.json`` in-process, into tmp_path/out (out-2, … after)."""

    def _run(overrides=()):
        cfg = make_cfg([f"out={tmp_path / 'out'}", "data.image_size=24", *overrides],
                       config_name="surrogate")  # fmt: skip
        return surrogate(cfg)

    return _run


def _frames_folder(root: Path, images: list[np.ndarray], columns: dict[str, list]) -> Path:
    """ROOT/frames/f_XXX.png + ROOT/labels.csv with ``frame`` and ``columns``."""
    (root / "frames").mkdir(parents=True)
    names = [f"f_{i:03d}.png" for i in range(len(images))]
    for name, image in zip(names, images, strict=True):
        Image.fromarray(image).save(root / "frames" / name)
    header = ["frame", *columns]
    rows = [
        [name, *(str(values[i]) for values in columns.values())] for i, name in enumerate(names)
    ]
    text = "\n".join(",".join(row) for row in [header, *rows]) + "\n"
    (root / "labels.csv").write_text(text)
    return root


def _breathing_images(n: int, fps: float = 4.0, hz: float = 0.25) -> tuple[list, np.ndarray]:
    """A bar moving up and down (a few px) inside a static textured body, with noise."""
    generator = np.random.default_rng(0)
    displacement = 0.5 + 0.5 * np.sin(2 * np.pi * hz * np.arange(n) / fps)
    static = np.zeros((24, 24))
    static[2:22, 2:22] = 60 + 40 * generator.random((20, 20))  # the "body": static texture
    images = []
    for d in displacement:
        image = static + 10 + 5 * generator.standard_normal((24, 24))
        top = int(round(9 + 4 * d))
        image[top : top + 3, 8:16] += 60
        images.append(np.clip(image, 0, 255).astype(np.uint8))
    return images, displacement


def test_writes_the_three_files(run, tmp_path, cache_dir):
    record = run(SMALL)
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} >= {"surrogate.csv", "surrogate.json", "surrogate.png"}
    assert json.loads((out / "surrogate.json").read_text())["component"] == record["component"]
    rows = list(csv.DictReader((out / "surrogate.csv").open()))
    # The session's cache holds other tests' phantoms too: read the one this run used.
    phantom = Path(record["data_root"]) / "labels.csv"
    labels = list(csv.DictReader(phantom.open()))
    assert [r["frame"] for r in rows] == [r["frame"] for r in labels]
    assert [float(r["time"]) for r in rows] == pytest.approx([float(r["time"]) for r in labels])
    surrogate_values = np.array([float(r["surrogate"]) for r in rows])
    displacement = np.array([float(r["displacement"]) for r in labels])
    r = np.corrcoef(surrogate_values, displacement)[0, 1]
    assert record["abs_pearson_r"] == pytest.approx(abs(r), abs=1e-4)
    assert record["abs_pearson_r"] >= 0.9
    assert record["time_source"].startswith("labels.csv")
    assert record["registration"]["max_abs_shift_px"] >= 0


def test_never_overwrites(run, tmp_path):
    run(SMALL)
    run(SMALL)
    assert (tmp_path / "out" / "surrogate.csv").is_file()
    assert (tmp_path / "out-2" / "surrogate.csv").is_file()


def test_from_embeddings(run, tmp_path):
    images, displacement = _breathing_images(120)
    root = _frames_folder(tmp_path / "seq", images, {"time": np.arange(120) / 4.0})
    embeddings = np.stack([im.astype(np.float32).ravel() for im in images])
    np.save(tmp_path / "emb.npy", embeddings)
    record = run(["data=frames", f"data.root={root}", f"embeddings={tmp_path / 'emb.npy'}"])
    assert record["method"].startswith("embeddings")
    values = [
        float(r["surrogate"]) for r in csv.DictReader((tmp_path / "out/surrogate.csv").open())
    ]
    assert abs(np.corrcoef(values, displacement)[0, 1]) > 0.9
    np.save(tmp_path / "bad.npy", embeddings[:10])
    with pytest.raises(DataError, match=r"shape \[10, 576\]; need \[120, D\]"):
        run(["data=frames", f"data.root={root}", f"embeddings={tmp_path / 'bad.npy'}"])


def test_without_time_needs_fps(run, tmp_path):
    images, displacement = _breathing_images(120)
    root = _frames_folder(tmp_path / "seq", images, {"displacement": displacement})
    with pytest.raises(ConfigError, match="no 'time' column.*fps=<frames per second>"):
        run(["data=frames", f"data.root={root}"])
    record = run(["data=frames", f"data.root={root}", "fps=4"])
    assert record["time_source"] == "frame index / fps=4"
    assert any("time = frame index / fps=4" in note for note in record["notes"])
    assert record["abs_pearson_r"] > 0.9
    times = [float(r["time"]) for r in csv.DictReader((tmp_path / "out/surrogate.csv").open())]
    assert times[:3] == [0.0, 0.25, 0.5]


def test_constant_sequence_is_one_error(run, tmp_path):
    images = [np.full((16, 16), 90, dtype=np.uint8)] * 40
    root = _frames_folder(tmp_path / "flat", images, {"time": np.arange(40) / 4.0})
    with pytest.raises(DataError, match=f"{root}: every frame is identical"):
        run(["data=frames", f"data.root={root}"])
    assert not (tmp_path / "out").exists()


def test_non_numeric_displacement_names_the_row(run, tmp_path):
    images, displacement = _breathing_images(30)
    values = [f"{d:.3f}" for d in displacement]
    values[4] = "n/a"
    root = _frames_folder(tmp_path / "seq", images, {"time": np.arange(30) / 4.0,
                                                     "displacement": values})  # fmt: skip
    with pytest.raises(DataError, match=r"line 6, frame 'f_004.png': displacement 'n/a' is not"):
        run(["data=frames", f"data.root={root}"])


def test_few_cycles_warn(run, tmp_path, caplog):
    images, _ = _breathing_images(24)  # 6 s at 0.25 Hz: 1.5 cycles
    root = _frames_folder(tmp_path / "seq", images, {"time": np.arange(24) / 4.0})
    with caplog.at_level(logging.WARNING):
        record = run(["data=frames", f"data.root={root}"])
    assert record["breathing_cycles"] < 2
    assert any("breathing cycles" in note for note in record["notes"])
    assert "breathing cycles" in caplog.text


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("surrogate.band=[0.7,0.1]", "surrogate.band"),
        ("surrogate.normalise=minmax", "surrogate.normalise"),
        ("surrogate.embedding=tsne", "surrogate.embedding"),
        ("surrogate.components=0", "surrogate.components"),
        ("surrogate.smooth_seconds=-1", "surrogate.smooth_seconds"),
        ("fps=0", "fps=0"),
        ("surrogate.low_frame=200", r"surrogate.low_frame=200: give a frame index 0..199"),
    ],
)
def test_bad_settings_are_refused(run, override, message):
    with pytest.raises(ConfigError, match=message):
        run([*SMALL, override])


def test_every_option_composes(make_cfg):
    options = ["surrogate.band=[0.15,0.6]", "surrogate.register=false",
               "surrogate.registration_passes=1", "surrogate.bias_sigma=0.2",
               "surrogate.normalise=rank", "surrogate.smooth_sigma=0",
               "surrogate.embedding=laplacian", "surrogate.components=5",
               "surrogate.neighbours=8", "surrogate.smooth_seconds=0", "surrogate.low_frame=3", "fps=10",
               "embeddings=x.npy", "out=somewhere", "data=frames", "data=video"]  # fmt: skip
    for option in options:
        cfg = make_cfg([option], config_name="surrogate")
        settings = settings_from(cfg)
        assert cfg.data.require_labels is False
    assert settings.embedding == "pca"
    cfg = make_cfg(options[:11], config_name="surrogate")
    settings = settings_from(cfg)
    assert (settings.band, settings.register, settings.normalise) == ((0.15, 0.6), False, "rank")
    assert (settings.components, settings.neighbours, settings.smooth_seconds) == (5, 8, 0.0)
    assert settings.low_frame == 3


def test_cli_error_is_one_line(cli, tmp_path):
    result = cli("surrogate", f"data.root={tmp_path / 'missing'}", "data=frames")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "does not exist" in lines[0]
    assert "Traceback" not in result.stderr
