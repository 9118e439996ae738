"""RetrievalEvaluation: val/mAP in metrics.csv of a tiny 2-epoch run, equal to sklearn's."""

from __future__ import annotations

import csv
import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from fastap_lab.build import build_datamodule, build_module, build_trainer
from fastap_lab.lit.retrieval_callback import RetrievalEvaluation
from tests.conftest import TINY


def sklearn_map(embeddings, labels, times, window):
    """Mean sklearn AP of each frame against the others outside the time window."""
    aps = []
    for q in range(len(labels)):
        keep = (np.arange(len(labels)) != q) & (np.abs(times - times[q]) > window)
        relevant = labels[keep] == labels[q]
        if relevant.any():
            aps.append(average_precision_score(relevant, embeddings[keep] @ embeddings[q]))
    return float(np.mean(aps))


def test_two_epoch_run_logs_val_map(make_cfg, tmp_path):
    cfg = make_cfg(
        [
            *TINY,
            "trainer.max_epochs=2",
            "+trainer.limit_train_batches=1",
            "trainer.enable_progress_bar=false",
        ]
    )
    module, datamodule = build_module(cfg), build_datamodule(cfg)
    build_trainer(cfg).fit(module, datamodule=datamodule)
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/mAP")]
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    val = datamodule.val_index
    assert "val/precision@20" in rows[-1] and "val/precision@50" not in rows[-1]  # 24 val frames
    module.eval()
    embeddings = module.embed(datamodule.frames.images[val]).double().numpy()
    frames = datamodule.frames
    expected = sklearn_map(embeddings, frames.labels[val].numpy(), frames.times[val].numpy(), 1.0)
    assert float(rows[-1]["val/mAP"]) == pytest.approx(expected, abs=1e-5)
    assert (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file()


def test_unlabelled_data_is_skipped_with_one_message(caplog):
    logged = []
    module = SimpleNamespace(log=lambda *a, **k: logged.append(a))
    frames = SimpleNamespace(labels=None)
    trainer = SimpleNamespace(current_epoch=0, datamodule=SimpleNamespace(frames=frames))
    callback = RetrievalEvaluation()
    with caplog.at_level(logging.INFO, logger="fastap_lab.lit.retrieval_callback"):
        callback.on_train_epoch_end(trainer, module)
        callback.on_train_epoch_end(trainer, module)
    assert logged == [] and caplog.text.count("the data has no labels") == 1


class Untouchable:
    def __getattr__(self, name):
        raise AssertionError(f"the callback read .{name} in an epoch it should skip")


def test_every_n_epochs_skips_other_epochs():
    trainer = SimpleNamespace(current_epoch=0, datamodule=Untouchable())
    RetrievalEvaluation(every_n_epochs=2).on_train_epoch_end(trainer, Untouchable())
    with pytest.raises(AssertionError):  # epoch 1 of every 2 is evaluated
        trainer.current_epoch = 1
        RetrievalEvaluation(every_n_epochs=2).on_train_epoch_end(trainer, Untouchable())
    with pytest.raises(ValueError, match="split"):
        RetrievalEvaluation(split="test")


def test_embed_split_keeps_index_order_and_restores_training_mode():
    net = torch.nn.Linear(4, 3)
    net.embed = lambda x: torch.nn.functional.normalize(net(x.float()), dim=1)
    net.train()
    trainer = SimpleNamespace(world_size=1, global_rank=0)
    module = net
    module.device = torch.device("cpu")
    images = torch.randint(0, 255, (10, 4), dtype=torch.uint8)
    index = torch.tensor([7, 2, 5, 0, 9])
    out = RetrievalEvaluation().embed_split(trainer, module, images, index, batch_size=2)
    torch.testing.assert_close(out, net.embed(images[index]).detach())
    assert net.training
