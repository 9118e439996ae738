"""Two tiny real runs shared by test_report.py and test_compare.py (this folder): a SimSiam run
and a FastAP run from it, each trained in-process and evaluated into ``inference/``. Made once
per test session (training dominates: ~20–40 s on a busy 2-core CPU)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from fastap_lab.report.collect import newest_inference
from tests.conftest import CONF_DIR, TINY

FASTAP = ["model=fastap", "loss=fastap", "optimizer=adamw", "loss.bins=10",
          "model.projector_dim=32", "model.embedding_dim=8", "trainer.max_epochs=2"]  # fmt: skip
QUICK_EVAL = ["eval.device=cpu", "eval.table_k=5"]
_made: dict[str, tuple[Path, Path]] = {}


def _train(run: Path, cache_dir: Path, overrides: list[str]) -> Path:
    from fastap_lab.train import train

    dropped = ("model.predictor",) if "model=fastap" in overrides else ()
    tiny = [o for o in TINY if not o.startswith(dropped)]
    base = [f"paths.output_dir={run}", f"paths.cache_dir={cache_dir}", *tiny,
            "trainer.max_epochs=1", "+trainer.limit_train_batches=1"]  # fmt: skip
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=base + overrides)
    if "eval_overrides" in cfg:  # train evaluates the run itself (eval_after_train): keep it quick
        with open_dict(cfg):
            cfg.eval_overrides = QUICK_EVAL
    train(cfg)
    return run


def evaluate(run: Path, cache_dir: Path) -> Path:
    from fastap_lab.report.evaluating import evaluate_run

    return evaluate_run(run, [*QUICK_EVAL, f"paths.cache_dir={cache_dir}"])


def tiny_runs(tmp_path_factory, cache_dir: Path) -> tuple[Path, Path]:
    """(simsiam run, fastap run), each with config.yaml, metrics.csv, checkpoints/, inference/."""
    if "runs" not in _made:
        root = tmp_path_factory.mktemp("report_runs")
        simsiam = _train(root / "simsiam", cache_dir, [])
        fastap = _train(root / "fastap", cache_dir, [*FASTAP, f"model.pretrained={simsiam}"])
        for run in (simsiam, fastap):
            if newest_inference(run) is None:
                evaluate(run, cache_dir)
        _made["runs"] = (simsiam, fastap)
    return _made["runs"]
