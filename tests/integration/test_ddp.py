"""Distributed training on CPU (gloo, 2 processes): the gathered FastAP loss equals the
single-process loss, both stages train under ``trainer=ddp``, the retrieval callback logs the
single-process metrics, and only rank 0 writes files."""

from __future__ import annotations

import csv
import socket
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from fastap_lab.lit.fastap import FastAPModule
from fastap_lab.losses.objectives import FastAPObjective
from tests.conftest import TINY

WORLD = 2
PER_RANK = 6  # frames per rank; 2 views each -> 12 embedding rows per rank


def global_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """The concatenated batch of all ranks: rank r owns rows [r*2n, (r+1)*2n) (its two views)."""
    generator = torch.Generator().manual_seed(seed)
    frames = WORLD * PER_RANK
    index = torch.arange(frames)
    embeddings = F.normalize(torch.randn(WORLD, 2, PER_RANK, 8, generator=generator), dim=-1)
    per_rank_index = index.reshape(WORLD, 1, PER_RANK).expand(WORLD, 2, PER_RANK)
    return {"embeddings": embeddings.flatten(0, 2), "index": per_rank_index.flatten()}


class _RankView(SimpleNamespace):
    """What ``FastAPModule.gather_batch`` reads from the module, backed by torch.distributed."""

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.zeros_like(tensor) for _ in range(self.trainer.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.stack(parts)


def _rank_loss(rank: int, port: int, result_file: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        batch = global_batch()
        rows = slice(rank * 2 * PER_RANK, (rank + 1) * 2 * PER_RANK)
        local = batch["embeddings"][rows].clone().requires_grad_(True)
        items = {k: batch["index"][rows] for k in ("index", "label", "time", "group")}
        view = _RankView(trainer=SimpleNamespace(world_size=WORLD), global_rank=rank)
        gathered, gathered_items, anchors = FastAPModule.gather_batch(view, local, items)
        objective = FastAPObjective(bins=10, positives="views")
        positives = objective.positive_mask(
            *(gathered_items[k] for k in ("index", "label", "time", "group"))
        )
        loss = objective(gathered, positives, anchors=anchors)
        loss.backward()
        total = loss.detach().clone()
        dist.all_reduce(total)  # DDP averages per-rank gradients: the objective is the mean
        torch.save({"loss": total / WORLD, "rows_equal": torch.equal(gathered, batch["embeddings"]),
                    "grad_norm": local.grad.norm()}, f"{result_file}.{rank}")  # fmt: skip
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_gathered_fastap_loss_equals_single_process_loss(tmp_path):
    """Every anchor has exactly one positive (its other view) and the ranks hold equally many
    anchors, so the mean over ranks of per-rank means is the single-process mean."""
    result = str(tmp_path / "rank")
    mp.spawn(_rank_loss, args=(_free_port(), result), nprocs=WORLD, join=True)
    outcomes = [torch.load(f"{result}.{r}", weights_only=True) for r in range(WORLD)]
    batch = global_batch()
    objective = FastAPObjective(bins=10, positives="views")
    index = batch["index"]
    single = objective(batch["embeddings"], objective.positive_mask(index, index, index, index))
    for outcome in outcomes:
        assert outcome["rows_equal"]  # the gathered rows are the concatenated batch, in order
        torch.testing.assert_close(outcome["loss"], single, rtol=1e-6, atol=1e-7)
        assert outcome["grad_norm"] > 0  # gradient flows through this rank's own rows


def _epoch_rows(run) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "eval_after_train=false"]
SHORT = [*TINY, "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "trainer.enable_progress_bar=false"]  # fmt: skip


@pytest.mark.slow
def test_both_stages_train_under_ddp_rank_zero_writes(cli, tmp_path, make_cfg):
    done = cli("train", "+experiment=smoke", *SHORT, *DDP)
    assert done.returncode == 0, done.stderr[-3000:]
    (simsiam_run,) = (tmp_path / "outputs" / "smoke").iterdir()
    without_predictor = [o for o in SHORT if not o.startswith("model.predictor_dim")]
    done = cli("train", "+experiment=smoke_fastap", *without_predictor, *DDP)
    assert done.returncode == 0, done.stderr[-3000:]
    (fastap_run,) = (tmp_path / "outputs" / "smoke_fastap").iterdir()
    for run in (simsiam_run, fastap_run):
        files = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())
        checkpoints = [f for f in files if f.startswith("checkpoints/")]
        assert checkpoints == ["checkpoints/best.ckpt", "checkpoints/last.ckpt"], files
        assert files.count("config.yaml") == 1 and files.count("metrics.csv") == 1
        assert not [f for f in files if f.endswith(".tmp")], files
        rows = _epoch_rows(run)
        assert [r["train/loss"] for r in rows if r.get("train/loss")], rows
    # The callback's val/mAP under DDP (shards all-gathered) = single-process evaluation of
    # the same weights (last.ckpt is saved after the callback ran at the end of epoch 0).
    from fastap_lab.evaluation_task import evaluate

    logged = [float(r["val/mAP"]) for r in _epoch_rows(fastap_run) if r.get("val/mAP")]
    record = evaluate(
        make_cfg(
            [
                f"ckpt_path={fastap_run}",
                "eval.device=cpu",
                "eval.split=val",
                "eval.table_k=2",
                "eval.queries.from_data=false",
            ],
            config_name="evaluate",
        )  # fmt: skip
    )
    assert logged and logged[-1] == pytest.approx(record["metrics"]["mAP"], abs=1e-5)
