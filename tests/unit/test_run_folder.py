"""RunFolder reads every fact of a run folder from its files (unit tier, folders built by hand)."""

from __future__ import annotations

import json

from fastap_lab.runs import (
    RunFolder,
    mark_finished,
    numbered_folders,
    run_containing,
    run_folders,
    run_of_checkpoint,
)

METRICS_CSV = """epoch,step,train/loss,val/mAP,train/epoch_time_s
0,9,0.9,,
0,9,,0.5,1.5
1,19,0.7,,
1,19,,0.6,1.2
2,29,,0.65,
"""


def write_run(folder):
    """A run folder as train leaves it, with two evaluations and one unfinished one."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("trainer:\n  max_epochs: 3\nmodel:\n  _target_: X\n")
    (folder / "metrics.csv").write_text(METRICS_CSV)
    for name, record in (("inference", {"metrics": {"mAP": 0.5}}), ("inference-3", {"n": 3})):
        (folder / name).mkdir()
        (folder / name / "metrics.json").write_text(json.dumps(record))
    (folder / "inference-2").mkdir()  # no metrics.json: an evaluation that did not end
    (folder / "inference_old").mkdir()  # not a numbered evaluation folder
    (folder / "inference_old" / "metrics.json").write_text("{}")
    (folder / "result.json").write_text(json.dumps({"optimized_metric": "val/mAP", "value": 0.6}))
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "best.ckpt").write_bytes(b"")
    return RunFolder(folder)


def test_a_run_folder_reads_config_epochs_evaluations_and_result(tmp_path):
    run = write_run(tmp_path / "2026-01-01_00-00-00")
    assert run.is_run and run.name == "2026-01-01_00-00-00"
    assert run.config == {"trainer": {"max_epochs": 3}, "model": {"_target_": "X"}}
    # Rows of one epoch are merged; only epochs with the required column are returned.
    assert run.epochs() == [
        {"epoch": 0, "train/loss": 0.9, "val/mAP": 0.5, "train/epoch_time_s": 1.5},
        {"epoch": 1, "train/loss": 0.7, "val/mAP": 0.6, "train/epoch_time_s": 1.2},
    ]
    assert [e["epoch"] for e in run.epochs(require="val/mAP")] == [0, 1, 2]
    assert len(run.epochs(require=None)) == 3
    assert run.evaluations == [run.path / "inference", run.path / "inference-3"]
    assert run.newest_evaluation == run.path / "inference-3"
    assert run.result == {"optimized_metric": "val/mAP", "value": 0.6}
    assert run.error is None
    assert run.checkpoint() == run.path / "checkpoints" / "best.ckpt"
    assert run.checkpoint(("last.ckpt",)) is None


def test_finished_only_with_the_marker(tmp_path):
    run = write_run(tmp_path / "run")
    assert not run.finished and run.finished_record is None
    mark_finished(run.path, epochs=3, max_epochs=3)
    assert run.finished
    assert run.finished_record["epochs"] == 3 and run.finished_record["max_epochs"] == 3
    (run.path / "FINISHED").write_text("not json")
    assert run.finished and run.finished_record == {}


def test_an_empty_or_missing_folder_reads_as_nothing(tmp_path):
    for run in (RunFolder(tmp_path), RunFolder(tmp_path / "missing")):
        assert not run.is_run and run.config is None and run.result is None
        assert run.epochs() == [] and run.evaluations == [] and run.newest_evaluation is None
        assert not run.finished and run.finished_record is None and run.checkpoint() is None
    (tmp_path / "config.yaml").write_text("")
    assert RunFolder(tmp_path).is_run and RunFolder(tmp_path).config == {}


def test_error_is_the_first_line_of_error_txt(tmp_path):
    (tmp_path / "error.txt").write_text("ConfigError: bad\ntraceback\n")
    assert RunFolder(tmp_path).error == "ConfigError: bad"
    (tmp_path / "error.txt").write_text("")
    assert RunFolder(tmp_path).error == ""


def test_numbered_folders_order_by_number_not_by_name(tmp_path):
    for number in (1, 2, 10):
        folder = tmp_path / ("gate" if number == 1 else f"gate-{number}")
        folder.mkdir()
        (folder / "gate.json").write_text("{}")
    names = [p.name for p in numbered_folders(tmp_path, "gate", "gate.json")]
    assert names == ["gate", "gate-2", "gate-10"]


def test_run_folders_lists_sub_folders_oldest_first(tmp_path):
    for name in ("2026-02-01_00-00-00", "2026-01-01_00-00-00"):
        (tmp_path / "exp" / name).mkdir(parents=True)
    (tmp_path / "exp" / "notes.txt").write_text("")
    assert [r.name for r in run_folders(tmp_path / "exp")] == [
        "2026-01-01_00-00-00",
        "2026-02-01_00-00-00",
    ]
    assert run_folders(tmp_path / "none") == []


def test_the_run_of_a_checkpoint(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (tmp_path / "loose.ckpt").write_bytes(b"x")
    assert run_of_checkpoint(run / "checkpoints" / "last.ckpt") == run
    assert run_of_checkpoint(run) == run  # a run folder is its own run
    assert run_of_checkpoint(tmp_path / "loose.ckpt") == tmp_path  # kept outside a run
    assert run_containing(run / "checkpoints" / "last.ckpt") == run
    assert run_containing(tmp_path / "loose.ckpt") is None  # no run to write an evaluation into
