"""Issue 14's probe, data / evaluation side (cases 2, 7, 9, 11): evaluating a run whose frames
moved, a single label, one K policy in training and evaluation, batches of one. One table row per
case (tests/integration/probe.py runs it); a few cases also run the real CLIs (marked slow). The
readers' cases (4, 6, 8, 12) are in test_probe_readers.py.
"""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fastap_lab.build import build_datamodule
from fastap_lab.cli import EXIT_USER_ERROR
from fastap_lab.data.frames import load_frame_folder
from fastap_lab.data.sources import phantom_root
from fastap_lab.lit.retrieval_callback import RetrievalEvaluation
from fastap_lab.train import train
from tests.conftest import CONF_DIR
from tests.integration.probe import QUICK_EVAL, Probe, Row, check_row, frames_with_labels, rows
from tests.integration.test_bad_input_matrix import QUIET, write_frames

TINY_PHANTOM = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "data" / "phantom_tiny.yaml"))[
    "phantom"
]
# Trained at 32 px with 4 blocks: the frames group's defaults are 64 px and 10 blocks.
RUN_DATA = ["data.image_size=32", "data.batch_size=16", "data.num_blocks=4", "data.split_gap=1.0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    """(run folder, its frames folder): a tiny SimSiam run trained on a frames folder that was
    then moved, so the path stored in the checkpoint no longer exists."""
    folder = tmp_path_factory.mktemp("probe")
    shutil.copytree(phantom_root(TINY_PHANTOM, cache_dir), folder / "trained_on")
    overrides = [
        f"paths.output_dir={folder / 'run'}", f"paths.cache_dir={cache_dir}", "data=frames",
        f"data.root={folder / 'trained_on'}", *RUN_DATA, "model.projector_dim=32",
        "model.predictor_dim=8", *QUIET, "+trainer.limit_train_batches=1",
    ]  # fmt: skip
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        train(compose("train", overrides=overrides))
    (folder / "trained_on").rename(folder / "moved")
    return folder / "run", folder / "moved"


# --------------------------------------------------------------------------- case 2
def evaluate_with_group(probe: Probe) -> str:
    said = probe.evaluate(f"ckpt_path={probe.run}", "data=frames", f"data.root={probe.data}")
    first = probe.record
    probe.evaluate(f"ckpt_path={probe.run}", f"data.root={probe.data}")
    # `data=frames` adds nothing but the frames: same settings, same numbers as without it.
    second = probe.record
    values = [{k: v["value"] for k, v in r["data_settings"].items()} for r in (first, second)]
    assert values[0] == values[1]
    assert first["metrics"]["mAP"] == second["metrics"]["mAP"]
    return said


def evaluate_explicit_size(probe: Probe) -> str:
    return probe.evaluate(f"ckpt_path={probe.run}", f"data.root={probe.data}", "data.image_size=48")


# --------------------------------------------------------------------------- case 7
def single_class(probe: Probe) -> str:
    root = frames_with_labels(probe, rows(*(f"f{i}.png,3" for i in range(12))))
    said = probe.evaluate("baseline=pixels", "data=frames", f"data.root={root}", "data.split=none")
    assert probe.record["metrics"]["mAP"] == 1.0 and probe.record["metrics_warning"]
    return said


# --------------------------------------------------------------------------- case 9
def one_k_policy(probe: Probe) -> str:
    """Training's val/precision@K and evaluation's inference/precision@K drop the same K."""
    root = frames_with_labels(probe, "default", count=12)
    said = probe.evaluate(
        "baseline=pixels", "data=frames", f"data.root={root}", "data.split=none",
        "eval.ks=[1,5,11,12,500]", "data.image_size=8",
    )  # fmt: skip
    record = probe.record
    frames = load_frame_folder(root, image_size=8)
    embeddings = torch.nn.functional.normalize(frames.images.flatten(1).float(), dim=1)
    callback = RetrievalEvaluation(ks=(1, 5, 11, 12, 500), split="all")
    datamodule = SimpleNamespace(split={"gap": 0.0})
    logged = callback.metrics(embeddings, frames, torch.arange(len(frames)), datamodule)
    logged_ks = sorted(int(name.split("@")[1]) for name in logged if "precision@" in name)
    assert logged_ks == record["metrics"]["ks"] == [1, 5, 11]  # gallery: 12 frames - the query
    return said + probe.caplog.text


# --------------------------------------------------------------------------- case 11
def batch_of_one(probe: Probe):
    root = frames_with_labels(probe, "default")
    return build_datamodule(
        probe.make_cfg(["data=frames", f"data.root={root}", "data.batch_size=1"])
    )


def trailing_batch_of_one(probe: Probe) -> str:
    """6 training frames in batches of 5 with drop_last=false: the batch of 1 never happens."""
    root = frames_with_labels(probe, "default")
    overrides = [
        "data=frames", f"data.root={root}", "data.image_size=16", "data.num_blocks=2",
        "data.split_gap=0", "data.batch_size=5", "data.drop_last=false",
        "model.projector_dim=32", "model.predictor_dim=8", *QUIET,
    ]  # fmt: skip
    cfg = probe.make_cfg(overrides)
    datamodule = build_datamodule(cfg)
    datamodule.setup()
    assert datamodule.train_index.numel() == 6
    sizes = [len(batch["index"]) for batch in datamodule.train_dataloader()]
    assert sizes == [5]
    train(cfg)  # a real epoch: no BatchNorm error
    return probe.caplog.text


ROWS = [
    Row("2 group defaults never replace the checkpoint's preprocessing", evaluate_with_group, 0,
        ("evaluation data: root=", "image_size=32, channels=1, register=False, split=blocks, val_fraction=0.2,"
         " num_blocks=4, split_gap=1.0 (checkpoint)", "normalisation mean=",
         '"image_size": {"value": 32, "from": "checkpoint"}',
         '"num_blocks": {"value": 4, "from": "checkpoint"}',
         '"root": {"value": "DATA", "from": "command line"}'),
        ("RUN/checkpoints", "DATA"), needs_run=True),
    Row("2 a key given explicitly wins", evaluate_explicit_size, 0,
        ("image_size=48 (command line)", '"image_size": {"value": 48, "from": "command line"}'),
        ("RUN/checkpoints", "DATA"), needs_run=True),
    Row("2 the run's data folder is gone: the error's fix is data.root=", lambda p: p.evaluate(f"ckpt_path={p.run}"), EXIT_USER_ERROR,
        ("does not exist", "set data.root="), ("RUN",), needs_run=True),
    Row("7 a single label: mAP 1 is called meaningless", single_class, 0,
        ("metrics meaningless: all 12 evaluated frames have label 3", '"metrics_warning": "all 12')),
    Row("9 one K policy: K beyond the gallery dropped in training and evaluation", one_k_policy, 0,
        ("k=12, k=500 are larger than the gallery (11 frames): not computed",
         "val/ metrics of the all split: k=12, k=500 are larger")),
    Row("11 data.batch_size=1 refused when composed", batch_of_one, EXIT_USER_ERROR,
        ("error: data.batch_size=1", "at least 2 frames per batch")),
    Row("11 drop_last=false never trains on a batch of 1", trailing_batch_of_one, 0,
        ("data.drop_last=false: 6 training frames in batches of 5", "1 frame(s) left out")),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[row.case for row in ROWS])
def test_probe_row(row, request, tmp_path, make_cfg, caplog, capsys):
    check_row(row, request, tmp_path, make_cfg, caplog, capsys)


# The real CLIs (a subprocess costs seconds: only these few).
@pytest.mark.slow
@pytest.mark.parametrize("case", ["2", "8", "11"])
def test_probe_cli(case, cli, tmp_path, request):
    if case == "2":
        run, data = request.getfixturevalue("trained")
        args = ["evaluate", f"ckpt_path={run}", "data=frames", f"data.root={data}", *QUICK_EVAL]
        expected, words = 0, ["evaluation data: root=", "num_blocks=4, split_gap=1.0 (checkpoint)"]
    else:
        labels = rows("f0.png,0", "/etc/hostname,1") if case == "8" else "default"
        root = write_frames(tmp_path / "data", labels=labels)
        size = "data.batch_size=1" if case == "11" else "data.batch_size=4"
        args = ["train", "data=frames", f"data.root={root}", size, *QUIET]
        expected = EXIT_USER_ERROR
        words = ["line 3", "absolute path"] if case == "8" else ["data.batch_size=1"]
    done = cli(*args)
    text = done.stdout + done.stderr
    assert done.returncode == expected, text[-3000:]
    assert "Traceback" not in text
    if expected:
        assert sum(line.startswith("error:") for line in done.stderr.splitlines()) == 1
    for word in words:
        assert word in text, text[-3000:]
