"""Sweeps: the post-train evaluation and return value, a multirun with a failing job and its
summary, failure recording, an Optuna search of 2 trials, and the launcher configs composing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from fastap_lab.cli import ERROR_FILE, record_job_failure
from fastap_lab.errors import ConfigError
from fastap_lab.report.sweep_summary import best_epoch
from fastap_lab.train import train
from tests.conftest import CONF_DIR, TINY

SHORT = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "trainer.enable_progress_bar=false",
]
QUICK = [*TINY, *SHORT]
QUICK_EVAL = 'eval_overrides=["eval.table_k=3","eval.queries.from_data=false"]'


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def last_logged(metrics_csv: Path, column: str) -> float:
    return [float(r[column]) for r in read_csv(metrics_csv) if r[column]][-1]


def test_train_evaluates_the_final_checkpoint_and_returns_the_metric(make_cfg, tmp_path):
    cfg = make_cfg([*QUICK, "logger=csv", QUICK_EVAL])
    value = train(cfg)
    run = tmp_path / "run"
    record = json.loads((run / "inference" / "metrics.json").read_text())
    assert Path(record["checkpoint"]) == (run / "checkpoints" / "last.ckpt").resolve()
    assert record["split"] == "val"
    assert value == pytest.approx(last_logged(run / "metrics.csv", "val/mAP"))
    # same checkpoint, same held-out frames, same exclusion window: the same mAP
    assert record["metrics"]["mAP"] == pytest.approx(value, abs=1e-5)
    result = json.loads((run / "result.json").read_text())
    assert result == {"optimized_metric": "val/mAP", "source": "val/mAP", "value": value}


def test_other_metrics_and_the_fallback(make_cfg, tmp_path):
    cfg = make_cfg([*QUICK, "logger=csv", QUICK_EVAL, "optimized_metric=inference/precision@1"])
    value = train(cfg)
    record = json.loads((tmp_path / "run" / "inference" / "metrics.json").read_text())
    assert value == pytest.approx(record["metrics"]["precision@1"])

    no_eval = make_cfg([*QUICK, "logger=csv", "eval_after_train=false", "~callbacks.retrieval"])
    assert train(no_eval) is None  # no val/mAP (no retrieval callback), no evaluation
    result = json.loads((Path(no_eval.paths.output_dir) / "result.json").read_text())
    assert result == {"optimized_metric": "val/mAP", "source": "inference/mAP", "value": None}


def test_best_epoch_reads_metrics_csv(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train/loss,val/mAP\n0,3,1.0,\n0,3,,0.5\n1,7,,0.7\n2,11,,0.6\n")
    assert best_epoch(path) == (1, 0.7)
    assert best_epoch(tmp_path / "missing.csv") == (None, None)


def test_a_programming_error_is_recorded_with_its_traceback(tmp_path):
    def explode():
        raise ZeroDivisionError("division by zero in the loss")

    try:
        explode()
    except ZeroDivisionError as exc:
        assert record_job_failure(exc, tmp_path) is None
    lines = (tmp_path / ERROR_FILE).read_text().splitlines()
    assert lines[0] == "ZeroDivisionError: division by zero in the loss"
    assert any("in explode" in line for line in lines[1:])  # the traceback follows

    record_job_failure(ConfigError("loss.bins=0: must be >= 1"), tmp_path / "user")
    assert (tmp_path / "user" / ERROR_FILE).read_text() == "loss.bins=0: must be >= 1\n"


@pytest.mark.slow
def test_multirun_summary_with_a_failing_job(cli, tmp_path):
    tiny = [o for o in QUICK if not o.startswith("data.batch_size=")]
    done = cli("train", "-m", "+experiment=smoke", *tiny, QUICK_EVAL, "data.batch_size=100000,8,16")
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multirun" / "smoke").iterdir()
    rows = read_csv(sweep / "sweep_summary.csv")
    assert sorted(int(r["job"]) for r in rows) == [0, 1, 2]
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"]
    failed = rows[-1]  # job 0 failed first; jobs 1 and 2 still ran
    assert int(failed["job"]) == 0
    assert "data.batch_size=100000" in failed["overrides"]
    assert failed["error"].startswith("data.batch_size=100000 is larger than")
    assert failed["error"] == (Path(failed["run"]) / ERROR_FILE).read_text().splitlines()[0]
    assert "error: data.batch_size=100000" in done.stderr
    values = [float(r["value"]) for r in rows[:2]]
    assert values == sorted(values, reverse=True)
    for row in rows[:2]:
        run = Path(row["run"])
        metrics = json.loads((run / "inference" / "metrics.json").read_text())["metrics"]
        assert float(row["value"]) == pytest.approx(last_logged(run / "metrics.csv", "val/mAP"))
        assert float(row["mAP"]) == pytest.approx(metrics["mAP"])
        assert float(row["precision@1"]) == pytest.approx(metrics["precision@1"])
        assert float(row["recall@5"]) == pytest.approx(metrics["recall@5"])
        assert int(row["best_epoch"]) == 0  # one epoch
    markdown = (sweep / "sweep_summary.md").read_text()
    assert "3 jobs, 1 failed" in markdown
    assert markdown.count("\n| ") == 5  # header, separator, 3 rows


@pytest.mark.slow
def test_optuna_search_runs_two_trials(cli, tmp_path):
    done = cli(
        "train", "+experiment=smoke_fastap", "model.pretrained=null", "hparams_search=fastap_optuna",
        "hydra.sweeper.n_trials=2", *SHORT, QUICK_EVAL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multirun" / "smoke_fastap").iterdir()
    rows = read_csv(sweep / "sweep_summary.csv")
    assert len(rows) == 2
    searched = ("loss.sigma=", "loss.bins=", "optimizer.lr=", "model.freeze_projector=")
    assert all(all(key in r["overrides"] for key in searched) for r in rows)
    # a failed trial (e.g. a NaN loss) is recorded and the study goes on
    assert all(r["status"] == "ok" or r["error"] for r in rows)
    ok = [float(r["value"]) for r in rows if r["status"] == "ok"]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(ok))
    assert set(best["best_params"]) == {key.rstrip("=") for key in searched}


@pytest.mark.parametrize(
    "overrides",
    [
        ["+experiment=fastap10", "hparams_search=fastap_optuna"],
        ["hydra/launcher=local_parallel"],
        ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
    ],
)
def test_sweep_configs_compose(overrides, tmp_path):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    assert cfg.hydra.callbacks.sweep_summary._target_ == "fastap_lab.sweep.SweepSummary"
    if "hparams_search=fastap_optuna" in overrides:
        assert cfg.hydra.sweeper.direction == "maximize"
        assert set(cfg.hydra.sweeper.params) == {
            "loss.sigma", "loss.bins", "optimizer.lr", "model.freeze_projector",
        }  # fmt: skip
    else:
        assert cfg.hydra.launcher._target_.startswith("hydra_plugins.hydra_")
