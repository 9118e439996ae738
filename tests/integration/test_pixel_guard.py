"""The raw-pixel guard (evaluation/guard.py): every evaluation scores raw pixels on the same
frames, split and exclusion; a model that does not beat them is flagged in metrics.json, on the
console, in report.md and in the sweep summary."""

from __future__ import annotations

import json
import logging

import pytest
import yaml
from hydra import compose, initialize_config_dir

from fastap_lab.evaluation import guard
from fastap_lab.evaluation_task import evaluate
from fastap_lab.report.collect import load_run
from fastap_lab.report.render import write_report
from fastap_lab.report.sweep_summary import write_summary
from fastap_lab.runs import mark_finished
from fastap_lab.train import train
from tests.conftest import CONF_DIR, TINY

# A phantom without acquisition nuisance, where pixels alone retrieve the breathing phase well
# (mAP ~0.99), and a FastAP model squeezed to 2 dimensions, trained on one batch, that does not
# (~0.91 on this seeded setup).
WEAK = [*(o for o in TINY if not o.startswith("model.predictor")), "model=fastap",
        "loss=fastap", "optimizer=adamw", "loss.bins=10", "model.embedding_dim=2"]  # fmt: skip
CLEAN = [
    "data.phantom.noise=0", "data.phantom.speckle=0", "data.phantom.jitter_px=0",
    "data.phantom.rotation_degrees=0", "data.phantom.gain_drift=0",
    "data.phantom.bias_strength=0",
]  # fmt: skip
QUICK_EVAL = ["eval.device=cpu", "eval.table_k=3", "eval.queries.from_data=false"]


def compose_cfg(name: str, overrides: list[str]):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


@pytest.fixture(scope="module")
def weak_run(tmp_path_factory, cache_dir):
    """A weak run on the clean phantom, evaluated by train itself (eval_after_train)."""
    run = tmp_path_factory.mktemp("weak") / "run"
    cfg = compose_cfg(
        "train",
        [f"paths.output_dir={run}", f"paths.cache_dir={cache_dir}", *WEAK, *CLEAN,
         "trainer.max_epochs=1", "+trainer.limit_train_batches=1", "logger=csv",
         "eval_overrides=[" + ",".join(f'"{o}"' for o in QUICK_EVAL) + "]"],
    )  # fmt: skip
    train(cfg)
    return run


def test_post_train_evaluation_flags_a_model_worse_than_pixels(weak_run, cache_dir, tmp_path):
    record = json.loads((weak_run / "inference" / "metrics.json").read_text())
    verdict = record["pixel_baseline"]
    assert verdict["pixels"]["mAP"] > record["metrics"]["mAP"]
    assert verdict["beats_pixels"] is False
    assert verdict["margin"] == pytest.approx(record["metrics"]["mAP"] - verdict["pixels"]["mAP"])
    # the guard's pixels are the baseline=pixels baseline on the same frames, split and exclusion
    pixels = evaluate(
        compose_cfg(
            "evaluate",
            [f"ckpt_path={weak_run}", "baseline=pixels", "baseline.size=32",
             f"paths.output_dir={tmp_path / 'pixels'}", f"paths.cache_dir={cache_dir}",
             *QUICK_EVAL],
        )
    )  # fmt: skip
    assert pixels["split"] == record["split"] == "val"
    assert pixels["num_frames_evaluated"] == record["num_frames_evaluated"]
    for name in ("mAP", "precision@1", "precision@10"):
        assert verdict["pixels"][name] == pytest.approx(pixels["metrics"][name], abs=1e-6)
    assert pixels["pixel_baseline"] is None  # raw pixels are not compared with themselves


def test_console_and_report_say_it(weak_run, cache_dir, caplog, tmp_path):
    cfg = compose_cfg(
        "evaluate",
        [f"ckpt_path={weak_run}", f"paths.cache_dir={cache_dir}",
         f"paths.output_dir={tmp_path}", *QUICK_EVAL],
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="fastap_lab.evaluate"):
        record = evaluate(cfg)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("does NOT beat raw pixels: mAP") for m in warnings), warnings
    report = write_report(load_run(weak_run), None).read_text()
    expected = guard.verdict_line(record["metrics"], record["pixel_baseline"])
    assert "**Warning: no better than raw pixels.**" in report
    assert expected in report and "does NOT beat raw pixels" in expected


def test_switched_off_for_huge_galleries(weak_run, cache_dir, tmp_path):
    cfg = compose_cfg(
        "evaluate",
        [f"ckpt_path={weak_run}", f"paths.cache_dir={cache_dir}", "eval.pixel_baseline=false",
         f"paths.output_dir={tmp_path}", *QUICK_EVAL],
    )  # fmt: skip
    assert cfg.eval.pixel_baseline is False
    record = evaluate(cfg)
    assert record["pixel_baseline"] is None and record["metrics"]["mAP"] is not None


def _fake_job(folder, number: int, mAP: float, pixels_mAP: float) -> None:
    (folder / ".hydra").mkdir(parents=True)
    hydra_yaml = {"hydra": {"job": {"num": number}, "overrides": {"task": [f"seed={number}"]}}}
    (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra_yaml))
    result = {"optimized_metric": "inference/mAP", "source": "inference/mAP", "value": mAP}
    (folder / "result.json").write_text(json.dumps(result))
    metrics = {"mAP": mAP, "precision@10": mAP, "ks": [10]}
    record = {
        "metrics": metrics,
        "pixel_baseline": guard.pixel_record(metrics, {"mAP": pixels_mAP}, 32),
    }
    (folder / "inference").mkdir()
    (folder / "inference" / "metrics.json").write_text(json.dumps(record))
    mark_finished(folder, epochs=1, max_epochs=1)  # a finished job: only those are ranked


def test_sweep_summary_names_the_jobs_that_lose_to_pixels(tmp_path):
    _fake_job(tmp_path / "0", 0, 0.49, 0.51)
    _fake_job(tmp_path / "1", 1, 0.70, 0.51)
    rows = write_summary(tmp_path)
    assert [(r["job"], r["beats_pixels"]) for r in rows] == [(1, True), (0, False)]
    assert rows[1]["pixels_mAP"] == 0.51
    markdown = (tmp_path / "sweep_summary.md").read_text()
    assert "job 0 does NOT beat raw pixels: mAP 0.4900 vs 0.5100" in markdown
    assert "job 1 does NOT" not in markdown
    csv_text = (tmp_path / "sweep_summary.csv").read_text()
    assert "pixels_mAP" in csv_text.splitlines()[0] and "beats_pixels" in csv_text
