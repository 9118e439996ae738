"""Crash and resume: a SIGKILLed run resumed from last.ckpt ends where an uninterrupted run
ends; the same seed gives the same metrics; checkpoints are never left truncated."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.plugins.io import TorchCheckpointIO

from fastap_lab.build import AtomicCheckpointIO
from fastap_lab.checkpoints import load_checkpoint
from fastap_lab.evaluation_task import evaluate
from fastap_lab.train import train
from tests.conftest import CONF_DIR, TINY, run_cli

# 2 epochs of ~8 steps (batch 8 of ~70 training frames), deterministic kernels, fixed seed;
# no validation / post-train evaluation (they do not change the weights and cost time).
QUIET = ["callbacks.retrieval=null", "callbacks.best_checkpoint=null", "eval_after_train=false"]
RUN = [
    *TINY, "+experiment=smoke", "trainer.max_epochs=2", "trainer.deterministic=true",
    "seed=3", "data.batch_size=8", "trainer.enable_progress_bar=false", *QUIET,
]  # fmt: skip


def _only_run(cwd: Path) -> Path:
    (run,) = (cwd / "outputs" / "smoke").iterdir()
    return run


def _start_and_kill_after_first_checkpoint(cwd: Path, cache_dir: Path) -> Path:
    """Start training, SIGKILL it as soon as an epoch's last.ckpt exists; the run folder."""
    env = {**os.environ, "FASTAP_LAB_CACHE": str(cache_dir), "WANDB_MODE": "offline"}
    process = subprocess.Popen(
        [sys.executable, "-m", "fastap_lab.train", *RUN],
        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        while not list(cwd.glob("outputs/smoke/*/checkpoints/last.ckpt")):
            assert process.poll() is None, "training ended before writing a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it was killed"
    return _only_run(cwd)


def _final_epoch_row(run: Path) -> dict:
    with open(run / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    return rows[-1]


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, cache_dir):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    straight.mkdir(), crashed.mkdir()
    done = run_cli("train", *RUN, cwd=straight, cache_dir=cache_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    killed = _start_and_kill_after_first_checkpoint(crashed, cache_dir)
    saved = load_checkpoint(killed / "checkpoints" / "last.ckpt")  # complete, not truncated
    assert saved["epoch"] == 0, "the kill came after the last epoch"
    assert not (killed / "FINISHED").exists()  # never chained from (fastap_lab.runs)

    last = killed / "checkpoints" / "last.ckpt"
    resumed = run_cli("train", *RUN, f"ckpt_path={last}", cwd=crashed, cache_dir=cache_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (resumed_run,) = [r for r in (crashed / "outputs" / "smoke").iterdir() if r != killed]
    assert json.loads((resumed_run / "FINISHED").read_text())["epochs"] == 2

    reference = load_checkpoint(_only_run(straight) / "checkpoints" / "last.ckpt")
    continued = load_checkpoint(resumed_run / "checkpoints" / "last.ckpt")
    assert continued["epoch"] == reference["epoch"] == 1
    assert continued["state_dict"].keys() == reference["state_dict"].keys()
    for name, weights in reference["state_dict"].items():
        assert torch.equal(continued["state_dict"][name], weights), name
    final, expected = _final_epoch_row(resumed_run), _final_epoch_row(_only_run(straight))
    assert final["epoch"] == expected["epoch"] == "1"
    assert float(final["train/loss"]) == float(expected["train/loss"])


def _train_and_evaluate(root: Path, cache_dir: Path) -> dict:
    overrides = [*TINY, *QUIET, "trainer.max_epochs=2", "trainer.deterministic=true", "seed=5",
                 "logger={}"]  # fmt: skip
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        run_overrides = [f"paths.output_dir={root / 'run'}", f"paths.cache_dir={cache_dir}"]
        train(compose("train", overrides=[*run_overrides, *overrides]))
        evaluate(
            compose(
                "evaluate",
                overrides=[
                    f"paths.output_dir={root / 'hydra'}",
                    f"paths.cache_dir={cache_dir}",
                    f"ckpt_path={root / 'run'}",
                    "eval.device=cpu",
                    "eval.table_k=3",
                ],
            )  # fmt: skip
        )
    return json.loads((root / "run" / "inference" / "metrics.json").read_text())


def _numbers(tree):
    """The numeric leaves of a JSON tree by path (times and paths differ between runs)."""
    if isinstance(tree, dict):
        return {f"{k}.{p}": v for k, sub in tree.items() for p, v in _numbers(sub).items()}
    if isinstance(tree, list):
        return {f"{i}.{p}": v for i, sub in enumerate(tree) for p, v in _numbers(sub).items()}
    return {"": tree} if isinstance(tree, int | float) and not isinstance(tree, bool) else {}


@pytest.mark.slow
def test_same_seed_same_metrics(tmp_path, cache_dir):
    first = _numbers(_train_and_evaluate(tmp_path / "a", cache_dir))
    second = _numbers(_train_and_evaluate(tmp_path / "b", cache_dir))
    assert any("mAP" in name for name in first), sorted(first)[:20]
    assert first == second


def test_checkpoint_write_interrupted_midway_keeps_the_previous_file(tmp_path, monkeypatch):
    last = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 0}, last)
    before = last.read_bytes()

    def half_then_killed(self, checkpoint, path, storage_options=None):
        Path(path).write_bytes(before[: len(before) // 2])
        raise KeyboardInterrupt  # the process dies mid-write

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", half_then_killed)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, last)
    assert last.read_bytes() == before
    assert torch.equal(load_checkpoint(last)["state_dict"]["w"], torch.ones(3))
