"""``logger=wandb`` offline (WANDB_MODE=offline, as the CLI fixture sets): one W&B run per
multirun job with its identity, config, history, images and per-query table; resuming a run
resumes its W&B id. The offline ``.wandb`` files are decoded with W&B's own protobuf schema."""

from __future__ import annotations

import csv
import json
import struct
from collections import defaultdict
from pathlib import Path

import pytest

from fastap_lab.lit.wandb_media import WANDB_ID_FILE
from tests.conftest import TINY

SHORT = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "trainer.enable_progress_bar=false",
]
QUICK_EVAL = 'eval_overrides=["eval.table_k=3","eval.queries.from_data=false"]'
BLOCK, RECORD_HEADER, FILE_HEADER = 32768, 7, 7  # W&B's LevelDB-style log format


def read_wandb_records(path: Path) -> dict[str, list]:
    """Records of an offline ``run-<id>.wandb`` file, grouped by type (run, config, history…)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, position, pending = path.read_bytes(), FILE_HEADER, b""
    assert data[:4] == b":W&B"
    records = defaultdict(list)
    while position + RECORD_HEADER <= len(data):
        if BLOCK - position % BLOCK < RECORD_HEADER:  # block trailer padding
            position += BLOCK - position % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + RECORD_HEADER])
        position += RECORD_HEADER
        if kind == 0 and length == 0:
            break
        pending += data[position : position + length]
        position += length
        if kind in (1, 4):  # FULL or LAST chunk: a whole record
            record = pb.Record()
            record.ParseFromString(pending)
            records[record.WhichOneof("record_type")].append(record)
            pending = b""
    return records


def offline_run(run: Path) -> tuple[str, Path, dict]:
    """(id from wandb_id.txt, its offline-run folder, its records)."""
    run_id = (run / WANDB_ID_FILE).read_text().strip()
    (folder,) = (run / "wandb").glob(f"offline-run-*-{run_id}")
    return run_id, folder, read_wandb_records(folder / f"run-{run_id}.wandb")


def history_keys(records: dict) -> set[str]:
    return {
        item.key or "/".join(item.nested_key) for r in records["history"] for item in r.history.item
    }


@pytest.mark.slow
def test_each_multirun_job_is_its_own_offline_run_and_resume_keeps_the_id(cli, tmp_path):
    done = cli(
        "train", "-m", "+experiment=smoke", *TINY, *SHORT, QUICK_EVAL, "logger=wandb",
        "optimizer.lr=0.01,0.05",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multirun" / "smoke").iterdir()
    jobs = [sweep / "0", sweep / "1"]
    ids = []
    for job, lr in zip(jobs, ("0.01", "0.05"), strict=True):
        run_id, folder, records = offline_run(job)
        ids.append(run_id)
        (run,) = [r.run for r in records["run"]]
        assert run.run_id == run_id and f"optimizer.lr={lr}" in run.display_name
        assert run.run_group == f"smoke-{sweep.name}"
        assert {"smoke", "sweep"} <= set(run.tags)
        config = {u.key: u.value_json for r in records["config"] for u in r.config.update}
        assert {"data", "model", "loss", "optimizer", "trainer"} <= set(config)
        assert json.loads(config["optimizer"])["lr"] == float(lr)
        expected = {"train/loss", "val/mAP", "inference/retrieval_grid/_type"}
        assert expected | {"inference/diagnostics/_type", "inference/per_query/_type"} <= (
            history_keys(records)
        )
        assert [r.exit.exit_code for r in records["exit"]] == [0]
        media = folder / "files" / "media"
        for image in ("retrieval_grid", "diagnostics"):
            (png,) = (media / "images" / "inference").glob(f"{image}_*.png")
            assert png.read_bytes() == (job / "inference" / f"{image}.png").read_bytes()
        (table,) = (media / "table" / "inference").glob("per_query_*.table.json")
        logged = json.loads(table.read_text())
        with open(job / "inference" / "per_query.csv", newline="") as f:
            header, *rows = list(csv.reader(f))
        assert logged["columns"] == header and len(logged["data"]) == len(rows)
    assert ids[0] != ids[1]

    resumed = cli(
        "train", "+experiment=smoke", *TINY, "trainer.max_epochs=2", "+trainer.limit_train_batches=2",
        "trainer.enable_progress_bar=false", QUICK_EVAL, "logger=wandb",
        f"ckpt_path={jobs[0]}/checkpoints/last.ckpt",
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (new_run,) = (tmp_path / "outputs" / "smoke").iterdir()
    run_id, _, records = offline_run(new_run)
    assert run_id == ids[0]
    assert [r.run.run_id for r in records["run"]] == [ids[0]]
