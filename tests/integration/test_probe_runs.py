"""Issue 14's probe, run / CLI side: one table row per case (what is run, exit code, words of
the single ``error:`` / ``warning:`` line, what must stay byte-identical on disk).

Rows run in-process through ``run_task`` (the CLIs' code path after Hydra's composition, which
``compose`` reproduces) unless they test Hydra's own stage (``via="cli"``: a subprocess, a few
seconds each, so only those). The data-side cases (2, 4, 6-9, 11) are in test_probe_data.py and
test_probe_readers.py; what a table row cannot show in test_run_lifecycle.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from fastap_lab.cli import EXIT_USER_ERROR, run_task
from fastap_lab.evaluation_task import evaluate
from fastap_lab.report.__main__ import make_report, parser
from fastap_lab.train import train
from tests.conftest import TINY
from tests.integration.conftest import link_copy, unfinished_copy
from tests.integration.test_bad_input_matrix import QUIET, tree_digest, write_frames

# --- the table -------------------------------------------------------------------------------


@dataclass
class Case:
    """One probe case. ``args(ctx)`` builds the arguments from the fixtures (``ctx``)."""

    id: str
    task: str  # train | evaluate | report
    args: object
    code: int = EXIT_USER_ERROR
    words: list[str] = field(default_factory=list)
    unchanged: str = "run"  # the folder (a ctx key) that must stay byte-identical (but report*)
    via: str = "task"  # task (in-process) | cli (subprocess)
    creates: str | None = None  # a file (relative to the working directory) that must appear


def _text_checkpoint(ctx) -> Path:
    folder = ctx["tmp"] / "text_run" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "last.ckpt").write_text("hello, this is not a checkpoint\n")
    return folder.parent


def _file(ctx, name: str, data: bytes) -> Path:
    (ctx["tmp"] / name).write_bytes(data)
    return ctx["tmp"] / name


def _equal_times(ctx) -> list[str]:
    rows = "frame,label,time\n" + "".join(f"f{i}.png,{i % 2},3.0\n" for i in range(12))
    root = write_frames(ctx["tmp"] / "data", labels=rows)
    return ["data=frames", f"data.root={root}", "data.image_size=16", "data.batch_size=4"]


FASTAP = ["model=fastap", "loss=fastap"]
CASES = [
    Case("1_only_unfinished_runs_are_not_chained", "train",
         lambda c: ["+experiment=smoke_fastap", *QUIET], words=["no finished run", "1 unfinished", "FINISHED"], unchanged="outputs"),
    Case("3_run_dir_holding_a_run", "train",
         lambda c: ["+experiment=smoke", *QUIET, f"hydra.run.dir={c['copy']}"], words=["hydra.run.dir=", "already holds files", "ckpt_path="], unchanged="copy", via="cli"),
    Case("5_report_of_an_unfinished_run", "report",
         lambda c: [str(c["unfinished"])], code=0, words=["warning:", "unfinished: 1 of 2 epochs"], unchanged="unfinished", creates="unfinished/report.md"),
    Case("10_text_last_ckpt_evaluate", "evaluate",
         lambda c: [f"ckpt_path={_text_checkpoint(c)}"], words=["last.ckpt", "text, not a checkpoint"]),
    Case("10_text_last_ckpt_resume", "train",
         lambda c: [*TINY, *QUIET, f"ckpt_path={_text_checkpoint(c)}"], words=["ckpt_path=", "text, not a checkpoint"]),
    Case("10_text_ckpt_pretrained", "train",
         lambda c: [*TINY[:-1], *QUIET, *FASTAP, f"model.pretrained={_file(c, 'hello.ckpt', b'hello')}"], words=["model.pretrained=", "hello.ckpt", "text"]),
    Case("10_15_empty_ckpt_has_a_reason", "evaluate",
         lambda c: [f"ckpt_path={_file(c, 'empty.ckpt', b'')}"], words=["empty.ckpt", "empty (0 bytes)"]),
    Case("10_garbage_ckpt_has_a_reason", "evaluate",
         lambda c: [f"ckpt_path={_file(c, 'junk.ckpt', bytes(range(128, 256)) * 8)}"], words=["junk.ckpt", "not a readable", "Error"]),
    Case("12_negative_lr", "train",
         lambda c: [*TINY, *QUIET, "optimizer.lr=-1"], words=["optimizer.lr=-1", "> 0"]),
    Case("12_gpu_without_cuda", "train",
         lambda c: [*TINY, *QUIET, "trainer=gpu"], words=["no CUDA device", "trainer=cpu"]),
    Case("13_pixels_baseline_with_a_training_experiment", "evaluate",
         lambda c: ["baseline=pixels", "+experiment=smoke"], code=0, creates="run/metrics.json"),
    Case("14_cache_is_a_file", "train",
         lambda c: [*TINY, *QUIET, f"paths.cache_dir={_file(c, 'cache', b'x')}"], words=["FASTAP_LAB_CACHE", "a file, not a folder"]),
    Case("14_read_only_outputs", "train",
         lambda c: ["+experiment=smoke", *QUIET], words=["hydra.run.dir=", "cannot create the run folder"], unchanged="bare_outputs", via="cli"),
    Case("15_negative_split_gap", "train",
         lambda c: [*TINY, *QUIET, "data.split_gap=-1"], words=["data.split_gap=-1", ">= 0"]),
    Case("15_all_equal_times", "train",
         lambda c: [*_equal_times(c), *QUIET, "model.projector_dim=32", "model.predictor_dim=8"], words=["time", "all equal"]),
    Case("15_video_is_a_folder", "train",
         lambda c: [*QUIET, "data=video", f"data.video={c['tmp']}", "data.require_labels=false"], words=["data.video=", "a folder, not a video file"]),
    Case("15_zero_epochs", "train",
         lambda c: [*TINY, *QUIET, "trainer.max_epochs=0"], words=["trainer.max_epochs=0", "no epoch would run"]),
]  # fmt: skip


def can_freeze(folder: Path) -> bool:
    """Whether ``folder`` can be made unwritable here: chmod for a user, ``chattr +i`` for root
    (root ignores permission bits)."""
    if os.geteuid() != 0:
        return True
    if shutil.which("chattr") is None or not _chattr(folder, "+i"):
        return False
    return _chattr(folder, "-i")


def _chattr(folder: Path, flag: str) -> bool:
    done = subprocess.run(["chattr", flag, str(folder)], capture_output=True)
    return done.returncode == 0


def freeze(folder: Path, frozen: bool) -> None:
    if os.geteuid() != 0:
        folder.chmod(0o555 if frozen else 0o755)
    else:
        _chattr(folder, "+i" if frozen else "-i")


class Context(dict):
    """The folders a case may use, each made on first use (``ctx["copy"]``)."""

    def __init__(self, tmp: Path, run: Path) -> None:
        super().__init__(tmp=tmp, run=run)
        self.builders = {
            "copy": lambda: link_copy(run, tmp / "copy"),
            "unfinished": lambda: unfinished_copy(run, tmp / "unfinished"),
            "outputs": lambda: unfinished_copy(
                run, tmp / "outputs" / "smoke" / "2026-01-01_00-00-00-000000"
            ).parents[1],
            "bare_outputs": lambda: _mkdir(tmp / "outputs"),
        }

    def __missing__(self, key: str):
        self[key] = self.builders[key]()
        return self[key]


def _mkdir(folder: Path) -> Path:
    folder.mkdir()
    return folder


@pytest.fixture
def ctx(tmp_path, finished_run, monkeypatch):
    """The working directory is ``tmp_path``, so ``outputs/`` is ``tmp_path / "outputs"``."""
    monkeypatch.chdir(tmp_path)
    return Context(tmp_path, finished_run)


def run_case(case: Case, ctx, make_cfg, cli, capsys) -> tuple[int, str]:
    """(exit code, stderr) of the case, in-process or as a subprocess."""
    args = case.args(ctx)
    if case.via == "cli":
        done = cli(case.task, *args)
        assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
        return done.returncode, done.stderr
    capsys.readouterr()
    code = 0
    try:
        if case.task == "report":
            run_task(make_report, parser().parse_args(args))
        else:
            overrides = [*args, "eval.device=cpu"] if case.task == "evaluate" else args
            cfg = make_cfg(overrides, config_name=case.task)
            run_task({"train": train, "evaluate": evaluate}[case.task], cfg)
    except SystemExit as exited:
        code = exited.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_probe_case(case, ctx, make_cfg, cli, capsys, tmp_path):
    if case.id == "12_gpu_without_cuda" and torch.cuda.is_available():
        pytest.skip("a CUDA device is present: trainer=gpu is valid here")
    frozen = ctx["bare_outputs"] if case.id == "14_read_only_outputs" else None
    if frozen and not can_freeze(frozen):
        pytest.skip("cannot make a folder unwritable here (root without chattr)")
    before = run_digest(ctx[case.unchanged])
    try:
        if frozen:
            freeze(frozen, True)
        code, err = run_case(case, ctx, make_cfg, cli, capsys)
    finally:
        if frozen:
            freeze(frozen, False)
    assert code == case.code, err[-3000:]
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(("error:", "warning:"))]
    if case.words:
        assert len(lines) == 1, err[-3000:]
        for word in case.words:
            assert word in lines[0], lines[0]
    else:
        assert not lines, err[-3000:]
    assert run_digest(ctx[case.unchanged]) == before
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained
    if case.creates:
        assert (tmp_path / case.creates).is_file()
    if case.id.startswith("13_"):  # the experiment's data keys were used: its 96 frames, 32 px
        record = json.loads((tmp_path / case.creates).read_text())
        assert (record["num_frames"], record["image_size"]) == (96, 32)


def run_digest(folder: Path) -> dict[str, str]:
    """:func:`tree_digest` without the report files, the one thing a report may (re)write."""
    return {k: v for k, v in tree_digest(folder).items() if not k.startswith("report")}
