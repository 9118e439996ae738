"""A run's life as the probe table cannot show it (issue 14): the FINISHED marker is written
last and only by a run that ended, ``latest_checkpoint`` skips an interrupted newer run, the
report is regenerated once the run has finished, an unwritable folder is one ``error:`` line."""

from __future__ import annotations

import errno
import shutil
import signal

import lightning as L
import pytest

from fastap_lab.cli import EXIT_USER_ERROR, run_task
from fastap_lab.config import latest_checkpoint
from fastap_lab.errors import ConfigError
from fastap_lab.report.__main__ import make_report, parser
from fastap_lab.runs import FINISHED, finished_record
from fastap_lab.train import train
from tests.conftest import TINY
from tests.integration.conftest import unfinished_copy
from tests.integration.test_bad_input_matrix import QUIET


def test_a_finished_run_says_so_last(finished_run):
    record = finished_record(finished_run)
    assert record["epochs"] == 1 and record["max_epochs"] == 1
    newest = max(p.stat().st_mtime_ns for p in finished_run.rglob("*") if p.name != FINISHED)
    assert (finished_run / FINISHED).stat().st_mtime_ns >= newest


def test_latest_checkpoint_skips_an_interrupted_newer_run(finished_run, tmp_path):
    outputs = tmp_path / "outputs"
    older = shutil.copytree(finished_run, outputs / "smoke" / "2026-01-01_00-00-00-000000")
    unfinished_copy(finished_run, outputs / "smoke" / "2026-01-02_00-00-00-000000")
    chosen = latest_checkpoint("smoke", str(outputs))
    assert chosen == str((older / "checkpoints" / "last.ckpt").resolve())
    shutil.rmtree(older)
    with pytest.raises(ConfigError, match="only 1 unfinished"):
        latest_checkpoint("smoke", str(outputs))


class InterruptSecondEpoch(L.Callback):
    """Ctrl-C at the start of epoch 2, after epoch 1's checkpoint was written."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


@pytest.mark.slow  # trains (≈ 9 s on the 2-core CPU)
def test_an_interrupted_training_leaves_no_marker(make_cfg, tmp_path):
    cfg = make_cfg(
        [*TINY, *QUIET, "trainer.max_epochs=2", "+trainer.limit_train_batches=1",
         f"+callbacks.interrupt._target_={__name__}.InterruptSecondEpoch"]
    )  # fmt: skip
    sigint = signal.getsignal(signal.SIGINT)  # Lightning ignores SIGINT while shutting down
    try:
        with pytest.raises(SystemExit):
            train(cfg)
    finally:
        signal.signal(signal.SIGINT, sigint)
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert not (run / FINISHED).exists()


def test_the_report_is_regenerated_once_the_run_has_finished(finished_run, tmp_path, capsys):
    run = unfinished_copy(finished_run, tmp_path / "run", max_epochs=1)
    run_task(make_report, parser().parse_args([str(run)]))
    assert "unfinished: 1 of 1 epochs" in (run / "report.md").read_text()
    shutil.copy(finished_run / FINISHED, run / FINISHED)  # the run ends
    capsys.readouterr()
    run_task(make_report, parser().parse_args([str(run)]))
    assert "unfinished" not in (run / "report.md").read_text()
    assert "warning:" not in capsys.readouterr().err


def test_an_unwritable_folder_is_one_line(tmp_path, capsys):
    def write_into_it():
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "x.json"))

    with pytest.raises(SystemExit) as exited:
        run_task(write_into_it)
    assert exited.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "x.json" in err and "writable" in err
