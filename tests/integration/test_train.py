"""SimSiam training end to end: in-process fast_dev_run, the CLI run folder, resume, NaN stop."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from fastap_lab.build import build_datamodule, build_module, build_trainer
from fastap_lab.errors import TrainingDivergedError
from tests.conftest import TINY


def test_fast_dev_run_in_process(make_cfg):
    cfg = make_cfg([*TINY, "debug=fast_dev_run", "logger={}", "callbacks={}"])
    module, datamodule = build_module(cfg), build_datamodule(cfg)
    before = [p.detach().clone() for p in module.backbone.parameters()]
    trainer = build_trainer(cfg)
    trainer.fit(module, datamodule=datamodule)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert any(
        not torch.equal(a, b) for a, b in zip(before, module.backbone.parameters(), strict=True)
    )
    embeddings = module.embed(datamodule.frames.images[:5])
    assert embeddings.shape == (5, 512)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(5), atol=1e-5)


def test_nan_loss_stops_with_a_clear_error(make_cfg):
    cfg = make_cfg([*TINY, "logger={}", "callbacks={}", "trainer.max_epochs=1"])
    module, datamodule = build_module(cfg), build_datamodule(cfg)
    module.loss_fn = lambda *args: args[0].sum() * float("nan")
    with pytest.raises(TrainingDivergedError, match=r"train/loss became nan .*optimizer\.lr"):
        build_trainer(cfg).fit(module, datamodule=datamodule)


def _epoch_rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return [r for r in csv.DictReader(f) if r["train/loss"]]


def test_cli_run_folder_and_resume(cli, tmp_path):
    args = [*TINY, "+experiment=smoke", "trainer.max_epochs=2"]
    done = cli("train", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = (tmp_path / "outputs" / "smoke").iterdir()
    effective = OmegaConf.load(run / "config.yaml")
    assert effective.optimizer.lr == 0.05 and effective.paths.output_dir == str(run)
    rows = _epoch_rows(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert all(float(r["train/z_std"]) > 0 and float(r["train/epoch_time_s"]) > 0 for r in rows)
    lrs = [float(r["train/lr"]) for r in rows]
    assert lrs[0] == pytest.approx(0.05) and lrs[1] < lrs[0]  # cosine annealing
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["fastap_lab"]["stage"] == "simsiam"
    assert any(k.startswith("backbone.") for k in ckpt["state_dict"])
    assert any(k.startswith("projector.") for k in ckpt["state_dict"])

    resumed = cli(
        "train", *args[:-1], "trainer.max_epochs=3", f"ckpt_path={run}/checkpoints/last.ckpt"
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    runs = sorted((tmp_path / "outputs" / "smoke").iterdir())
    assert len(runs) == 2 and run in runs  # a new folder; the first run is untouched
    (new,) = [r for r in runs if r != run]
    assert [int(r["epoch"]) for r in _epoch_rows(new)] == [2]
    assert [int(r["epoch"]) for r in _epoch_rows(run)] == [0, 1]


def test_seeded_runs_are_reproducible(make_cfg):
    losses = []
    for _ in range(2):
        cfg = make_cfg(
            [
                *TINY,
                "logger={}",
                "callbacks={}",
                "trainer.max_epochs=1",
                "trainer.deterministic=true",
            ]
        )
        L.seed_everything(cfg.seed)
        module, datamodule = build_module(cfg), build_datamodule(cfg)
        trainer = build_trainer(cfg)
        trainer.fit(module, datamodule=datamodule)
        losses.append(float(trainer.callback_metrics["train/loss"]))
    assert losses[0] == losses[1]
