"""python -m fastap_lab.gate: outputs, methods, streaming, bad input (integration tier)."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from fastap_lab.errors import ConfigError, DataError
from fastap_lab.gate import gate
from fastap_lab.gating.agreement import label_agreement
from tests.conftest import CONF_DIR, train_tiny_run
from tests.frame_inputs import write_video

SMALL = [
    "data.phantom.num_frames=160",
    "data.phantom.image_size=32",
    "data.phantom.num_breath_holds=1",
    "data.phantom.hold_seconds=[5.0,7.0]",
    "data.image_size=32",
]


@pytest.fixture
def run(make_cfg, tmp_path):
    """``run(overrides) -> gate.json`` in-process, into tmp_path/out (out-2, … after)."""

    def _run(overrides=(), out=True):
        extra = [f"out={tmp_path / 'out'}"] if out else []
        return gate(make_cfg([*extra, *overrides], config_name="gate"))

    return _run


def _rows(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open()))


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory, cache_dir):
    from fastap_lab.respiration.sequence import load_frames
    from fastap_lab.respiratory_config import data_config

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("gate", [f"paths.cache_dir={cache_dir}", "paths.output_dir=.", *SMALL])
    return load_frames(data_config(cfg))[0].root


def test_surrogate_gate_writes_its_files_and_agrees_with_the_labels(run, tmp_path, phantom_root):
    labels = _rows(phantom_root / "labels.csv")
    reference = next(i for i, row in enumerate(labels) if row["label"] == "1")
    record = run([*SMALL, f"reference={reference}"])
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {
        "trace.csv",
        "gated_frames.csv",
        "gate.json",
        "trace.png",
    }
    trace = _rows(out / "trace.csv")
    assert list(trace[0]) == [
        "frame",
        "time",
        "score",
        "smoothed",
        "gated",
        "label",
        "displacement",
    ]
    assert [r["frame"] for r in trace] == [r["frame"] for r in labels]
    gated = np.array([r["gated"] == "1" for r in trace])
    assert [r["frame"] for r in _rows(out / "gated_frames.csv")] == [
        r["frame"] for r in trace if r["gated"] == "1"
    ]
    truth = np.array([int(r["label"]) for r in trace])
    assert record["labels"]["f1"] == pytest.approx(label_agreement(gated, truth, 1)["f1"])
    assert record["method"] == "surrogate" and record["reference"]["frame"] == reference
    assert json.loads((out / "gate.json").read_text())["frames_gated"] == gated.sum()
    # The surrogate tracks the phantom's displacement: the trace follows closeness to the reference.
    assert record["displacement"]["abs_pearson_r"] >= 0.9
    assert record["labels"]["f1"] >= 0.6  # well above chance (label 1 is ~30 % of frames)
    smoothed = np.array([float(r["smoothed"]) for r in trace])
    assert np.array_equal(gated, smoothed >= record["threshold"])


def test_never_overwrites(run, tmp_path):
    run([*SMALL, "reference=3"])
    run([*SMALL, "reference=3"])
    assert (tmp_path / "out" / "gate.json").is_file() and (
        tmp_path / "out-2" / "gate.json"
    ).is_file()


def test_duty_cycle_and_pixels_method(run):
    record = run([*SMALL, "reference=3", "gate.method=pixels", "gate.duty_cycle=0.25",
                  "gate.smooth_seconds=0"])  # fmt: skip
    assert record["method"] == "pixels"
    assert record["duty_cycle"] == pytest.approx(0.25, abs=0.01)
    assert record["surrogate_baseline"]["method"] == "surrogate"
    off = run([*SMALL, "reference=3", "gate.method=pixels", "gate.compare_surrogate=false"])
    assert off["surrogate_baseline"] is None


def test_image_reference_of_another_size_is_resized_with_a_note(run, tmp_path, phantom_root):
    frame = sorted((phantom_root / "frames").iterdir())[5]
    big = tmp_path / "ref.png"
    Image.open(frame).resize((80, 80)).convert("RGB").save(big)
    for method in ("surrogate", "pixels"):
        record = run([*SMALL, f"reference={big}", f"gate.method={method}", "gate.adapt=true"])
        assert record["reference"]["kind"] == "image"
        assert any("ref.png" in note and "80" in note for note in record["notes"]), record["notes"]
    assert record["features"].startswith("MIND")


def test_no_labels_skips_the_metrics_and_still_writes_the_trace(run, tmp_path, phantom_root):
    root = tmp_path / "seq"
    (root / "frames").mkdir(parents=True)
    names = sorted(p.name for p in (phantom_root / "frames").iterdir())[:120]
    for name in names:
        (root / "frames" / name).write_bytes((phantom_root / "frames" / name).read_bytes())
    (root / "labels.csv").write_text(
        "frame,time\n" + "".join(f"{n},{i / 4}\n" for i, n in enumerate(names))
    )
    record = run(["data=frames", f"data.root={root}", "data.image_size=32", "reference=0",
                  "gate.method=pixels"])  # fmt: skip
    assert record["labels"] is None and any("no labels" in n for n in record["notes"])
    assert list(_rows(tmp_path / "out" / "trace.csv")[0]) == [
        "frame",
        "time",
        "score",
        "smoothed",
        "gated",
    ]


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ([], ConfigError, "reference is not set"),
        (["reference=5000"], ConfigError, "reference=5000: the sequence has frames 0..159"),
        (
            ["reference=/no/such.png"],
            DataError,
            "reference=/no/such.png: not a frame index and no such image",
        ),
        (["reference=3.5"], DataError, "reference=3.5: not a frame index"),
        (["reference=3", "gate.duty_cycle=1.5"], ConfigError, "gate.duty_cycle"),
        (["reference=3", "gate.threshold=abc"], ConfigError, "gate.threshold"),
        (["reference=3", "gate.method=magic"], ConfigError, "gate.method"),
        (["reference=3", "gate.method=embedding"], ConfigError, "needs ckpt_path"),
        (
            ["reference=3", "gate.smooth_seconds=100"],
            DataError,
            "shorter than the smoothing window",
        ),
        (["reference=3", "gate.positive_label=yes"], ConfigError, "gate.positive_label='yes'"),
        (["reference=3", "gate.embed_layer=head"], ConfigError, "gate.embed_layer='head'"),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(run, tmp_path, overrides, error, message):
    with pytest.raises(error, match=message):
        run([*SMALL, *overrides])
    assert not (tmp_path / "out").exists()


def test_unreadable_reference_image(run, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(DataError, match="bad.png"):
        run([*SMALL, f"reference={bad}"])


def test_streamed_video_equals_the_in_memory_scores(run, tmp_path):
    from fastap_lab.data.video import load_video
    from fastap_lab.gating.scoring import pixel_scores

    write_video(tmp_path / "clip.mp4", count=40, size=32, rate=10)
    common = ["data=video", f"data.video={tmp_path / 'clip.mp4'}", "data.image_size=32",
              "reference=4", "gate.method=pixels", "gate.smooth_seconds=0", "gate.progress=false"]  # fmt: skip
    streamed = run([*common, "gate.chunk_frames=64"])
    chunked = run([*common, "gate.chunk_frames=7"])
    assert streamed["streamed"]["chunk_frames"] == 64 and chunked["num_frames"] == 40
    frames = load_video(tmp_path / "clip.mp4", None, image_size=32, require_labels=False)
    expected, _ = pixel_scores(frames.images, frames.images[4], 32, adapt=False)
    scores = [np.array([float(r["score"]) for r in _rows(tmp_path / name / "trace.csv")])
              for name in ("out", "out-2")]  # fmt: skip
    np.testing.assert_allclose(scores[0], expected, atol=2e-6)  # one chunk = all frames
    # Chunks of 7 standardise with the first 7 frames only: same reference peak, other values.
    assert scores[1][4] == pytest.approx(1.0) and not np.allclose(scores[1], expected, atol=1e-3)
    times = [float(r["time"]) for r in _rows(tmp_path / "out" / "trace.csv")]
    assert times == pytest.approx(np.arange(40) / 10)


def test_cli_error_is_one_line(cli):
    result = cli("gate", "reference=-1")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "reference=-1" in lines[0]


@pytest.fixture(scope="module")
def gated_run(tmp_path_factory, cache_dir):
    """A tiny trained run gated twice by its embeddings (gate.adapt false, then true), in-process:
    (run folder, [gate.json of each])."""
    folder = tmp_path_factory.mktemp("gate")
    run_dir = train_tiny_run(folder / "run", cache_dir)
    records = []
    for adapt in ("false", "true"):
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("gate", [f"paths.output_dir={folder / 'hydra'}",
                                   f"paths.cache_dir={cache_dir}", "data=phantom_tiny",
                                   f"ckpt_path={run_dir}", "reference=2", f"gate.adapt={adapt}"])  # fmt: skip
        records.append(gate(cfg))
    return run_dir, records


def test_embedding_gate_writes_into_the_run_folder_never_over_it(gated_run):
    smoke_run, records = gated_run
    assert [record["method"] for record in records] == ["embedding", "embedding"]
    record = records[-1]  # gate.adapt=true
    assert (smoke_run / "gate" / "trace.csv").is_file()
    assert (smoke_run / "gate-2" / "gate.json").is_file()
    assert record["adaptation"]["mode"] == "adabn"
    baseline = record["surrogate_baseline"]  # the same gate by the surrogate, for comparison
    assert baseline["method"] == "surrogate" and 0 <= baseline["f1"] <= 1
    assert baseline["beats_this_gate"] == (baseline["f1"] > record["labels"]["f1"])
    trace = _rows(smoke_run / "gate-2" / "trace.csv")
    assert float(trace[2]["score"]) == pytest.approx(1.0, abs=1e-5)  # the reference frame itself


def test_the_report_shows_the_newest_gate(gated_run):
    from fastap_lab.report.collect import load_run
    from fastap_lab.report.render import render

    smoke_run, _ = gated_run  # gated twice: gate/ and gate-2/
    for lang in ("en", "ja"):
        text = render(load_run(smoke_run), None, lang, plot_name=None)
        assert "gate-2/gate.json" in text and "![trace](gate-2/trace.png)" in text
    record = json.loads((smoke_run / "gate-2" / "gate.json").read_text())
    assert f"{record['frames_gated']} / {record['num_frames']}" in text
    assert f"F1 {record['surrogate_baseline']['f1']:.4f}" in text
    from fastap_lab.report.html import render_html
    from fastap_lab.report.render import document

    page = render_html(document(load_run(smoke_run), None, "en", plot_name=None))
    gating = page.split("Respiratory gating</h2>")[1].split("<h2>")[0]  # the trace, inline
    assert "gate-2/gate.json" in gating and '<img src="data:image/png;base64,' in gating


def test_a_bridge_whose_orientation_is_a_guess_is_warned_about(
    run, tmp_path, phantom_root, caplog, monkeypatch
):
    # gate.target = the sequence itself: the two breathing motions agree, no warning; forced to
    # agree 0.1 the console warns as evaluate's eval.adapt does (gate.json records it either way).
    import fastap_lab.respiration.placement as placement

    frame = sorted((phantom_root / "frames").iterdir())[5]
    common = [*SMALL, f"reference={frame}", f"gate.target={phantom_root}"]
    warning = "gate.target: the target and gallery sequences' breathing motions agree only"
    with caplog.at_level(logging.WARNING):
        record = run(common)
    assert abs(record["bridge"]["orientation_agreement"]) >= 0.3 and warning not in caplog.text
    monkeypatch.setattr(placement, "field_agreement", lambda first, second: 0.1)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        record = run(common)
    assert record["bridge"]["orientation_agreement"] == 0.1
    assert f"{warning} 0.10 (|cosine|)" in caplog.text


def test_every_option_composes_and_is_checked(make_cfg):
    from fastap_lab.respiratory_config import gate_values

    options = ["gate.method=pixels", "gate.threshold=0.9", "gate.smooth_seconds=0",
               "gate.hysteresis=0.05", "gate.min_window_seconds=2", "gate.adapt=true",
               "gate.positive_label=0", "gate.embed_layer=backbone", "gate.pixel_size=16",
               "gate.batch_size=8", "gate.chunk_frames=100", "gate.device=cpu", "gate.progress=false",
               "gate.compare_surrogate=false",
               "surrogate.smooth_seconds=0", "fps=10", "out=somewhere", "data=frames", "data=video"]  # fmt: skip
    for option in options:
        values = gate_values(make_cfg(["reference=0", option], config_name="gate"))
        assert values["method"] in ("surrogate", "pixels")
    values = gate_values(make_cfg(["reference=0", *options[:13]], config_name="gate"))
    assert (values["threshold"], values["hysteresis"], values["pixel_size"]) == (0.9, 0.05, 16)
    duty = gate_values(make_cfg(["reference=0", "gate.duty_cycle=0.3"], config_name="gate"))
    assert duty["duty_cycle"] == 0.3
    with pytest.raises(ConfigError, match="gate.chunk_frames=0"):
        gate_values(make_cfg(["reference=0", "gate.chunk_frames=0"], config_name="gate"))
    with pytest.raises(ConfigError, match="does not use it"):
        gate_values(
            make_cfg(["reference=0", "ckpt_path=x", "gate.method=pixels"], config_name="gate")
        )
