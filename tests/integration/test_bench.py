"""Benchmarks: each ``main`` runs on a tiny setting and prints its table (smoke, no timing
assertions); the plain loop computes the stage's own loss; the hardware options of StageModule."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from fastap_lab.bench import data_pipeline, epoch_time, fastap_loss, ranking, training_step
from fastap_lab.bench.__main__ import available
from fastap_lab.bench._common import STAGE_OVERRIDES, plain_loss
from fastap_lab.build import build_datamodule, build_module, build_trainer
from tests.conftest import TINY

# TINY without the SimSiam-only predictor size, so it also composes with the FastAP model.
TINY_BOTH = [o for o in TINY if not o.startswith("model.predictor_dim")]


@pytest.fixture
def tiny(cache_dir):
    return [*TINY_BOTH, f"paths.cache_dir={cache_dir}"]


def test_dispatcher_lists_benchmarks_not_helpers():
    names = available()
    assert {"training_step", "data_pipeline", "epoch_time", "fastap_loss", "ranking"} <= set(names)
    assert not any(name.startswith("_") for name in names)


def number_after(label: str, text: str) -> float:
    return float(text.split(label, 1)[1].split()[0].rstrip("x,"))


def test_ranking_benchmark_agrees_with_torchmetrics_and_sklearn(capsys):
    assert ranking.main(["--sizes", "60", "--dim", "8", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "ours / own sort" in out and number_after("torchmetrics / ours =", out) > 0
    assert number_after("|mAP diff|", out) < 1e-5  # torchmetrics on float32 scores
    assert number_after("max |AP ours - sklearn|", out) < 1e-12


def test_fastap_loss_benchmark_prints_ratio_and_float64_agreement(capsys):
    assert fastap_loss.main(["--sizes", "32", "--bins", "10", "--dim", "8", "--repeats", "1"]) == 0
    (row,) = [
        line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("    32")
    ]
    loss_diff, grad_diff = float(row[-3]), float(row[-1])  # "|Δloss| / max|Δgrad|"
    assert row[1] == "10" and loss_diff < 1e-12 and grad_diff < 1e-12


def test_scratch_folders_are_removed_when_the_process_exits():
    code = (
        "from pathlib import Path; from fastap_lab.bench._common import scratch_dir; "
        "p = Path(scratch_dir('fastap_lab_test_')); (p / 'sub').mkdir(); "
        "(p / 'sub' / 'last.ckpt').write_bytes(b'x'); print(p)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    folder = Path(done.stdout.strip())
    assert folder.name.startswith("fastap_lab_test_") and not folder.exists()


@pytest.mark.slow  # 6 short Trainer.fit calls: a minute on the shared machine
def test_training_step_prints_each_stage_and_side(tiny, capsys):
    assert training_step.main(["--steps", "1", "--warmup", "1", "--rounds", "1", *tiny]) == 0
    out = capsys.readouterr().out
    assert "machine:" in out and "torch" in out
    for stage in ("simsiam", "fastap"):
        rows = [line.split() for line in out.splitlines() if line.split()[:1] == [stage]]
        assert [row[1] for row in rows] == ["1"]  # one row per round
        assert all(float(v) > 0 for row in rows for v in row[2:])
        assert f"{stage}: median lightning/plain" in out


def test_data_pipeline_prints_headroom(tiny, capsys):
    args = ["--stages", "fastap", "--batches", "2", "--steps", "1", "--rounds", "1", *tiny]
    assert data_pipeline.main(args) == 0
    out = capsys.readouterr().out
    (row,) = [line.split() for line in out.splitlines() if line.startswith("  fastap")]
    assert row[1] == "cpu" and row[-1].endswith("x") and float(row[-1][:-1]) > 0
    assert "fastap: median pipeline/step" in out


@pytest.mark.slow
def test_epoch_time_runs_the_train_cli_and_reads_metrics(tiny, tmp_path, capsys):
    args = ["--epochs", "2", "--workdir", str(tmp_path), "--reference", str(tmp_path / "outputs")]
    assert epoch_time.main([*args, *tiny]) == 0
    out = capsys.readouterr().out
    for experiment, full in (("simsiam100", "100"), ("fastap10", "10")):
        rows = [line.split() for line in out.splitlines() if line.split()[:2] == [experiment, "2"]]
        # measured: experiment, epochs, 2 epoch times, steady, wall, start-up, full, estimate
        (measured,) = [row for row in rows if row[2] != "epochs"]
        assert len(measured) == 9 and measured[7] == full
        (ref,) = [
            line for line in out.splitlines() if line.split()[:3] == [experiment, "2", "epochs"]
        ]
        assert "wall" in ref and str(tmp_path) in ref


@pytest.mark.parametrize("stage", sorted(STAGE_OVERRIDES))
def test_plain_loss_is_the_modules_training_loss(make_cfg, stage):
    cfg = make_cfg([*STAGE_OVERRIDES[stage], *TINY_BOTH])
    datamodule, module = build_datamodule(cfg), build_module(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    module.log = lambda *args, **kwargs: None  # no trainer: logging is not what is compared
    module.gather_batch = lambda e, items: (e, items, torch.arange(e.shape[0]))  # one process
    torch.manual_seed(3)
    expected = module.training_step(batch, 0)
    torch.manual_seed(3)
    assert torch.allclose(plain_loss(module, batch, torch.device("cpu")), expected)


def _simsiam_loss(module, images: torch.Tensor) -> torch.Tensor:
    module.log = lambda *args, **kwargs: None
    torch.manual_seed(5)
    return module.training_step({"images": images}, 0)


def test_channels_last_gives_the_same_loss(make_cfg):
    cfg = make_cfg(TINY)
    L.seed_everything(0)
    default = build_module(cfg).train()
    nhwc = copy.deepcopy(default)
    nhwc.channels_last = True
    nhwc.configure_model()
    convs = [m for m in nhwc.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    conv = convs[1]  # 64 -> 64 channels, 3x3: the two layouts differ (the 1-channel stem's not)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()  # the option really changed the layout
    images = torch.randint(0, 256, (8, 1, 32, 32), dtype=torch.uint8)
    expected, got = _simsiam_loss(default, images), _simsiam_loss(nhwc, images)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert nhwc.state_dict().keys() == default.state_dict().keys()


def _compiled_fast_dev_run(make_cfg, backend: str) -> None:
    cfg = make_cfg(
        [*TINY, f"model.compile={backend}", "debug=fast_dev_run", "logger={}", "callbacks={}"]
    )
    module, datamodule = build_module(cfg), build_datamodule(cfg)
    keys = set(module.state_dict())
    trainer = build_trainer(cfg)
    trainer.fit(module, datamodule=datamodule)
    assert hasattr(module.backbone, "_compiled_call_impl") and module.backbone._compiled_call_impl
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert set(module.state_dict()) == keys  # checkpoints keep their backbone.* keys


@pytest.mark.slow  # tracing a ResNet-18 forward + backward: ~25 s on the shared 2-core CPU
def test_compile_fast_dev_run_on_cpu(make_cfg):
    # aot_eager traces forward and backward as inductor does, without generating C++ (which
    # takes 2 CPU-minutes for a ResNet-18 on this 2-core machine): the wiring is what is tested.
    _compiled_fast_dev_run(make_cfg, "aot_eager")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_compile_inductor_fast_dev_run_on_gpu(make_cfg):
    _compiled_fast_dev_run(make_cfg, "true")
