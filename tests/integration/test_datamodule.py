"""FramesDataModule on a tiny frames folder built in tmp_path."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from PIL import Image

from fastap_lab.data.loading import KEYS, load_data
from fastap_lab.errors import ConfigError
from fastap_lab.lit.datamodule import FramesDataModule


def _folder(root, n=60, labels=True):
    (root / "frames").mkdir(parents=True)
    rows = ["frame,label,time,video" if labels else "frame,time,video"]
    for i in range(n):
        video, t = ("a", i) if i < n // 2 else ("b", i - n // 2)
        Image.fromarray(np.full((12, 10, 3), 4 * i, np.uint8)).save(
            root / "frames" / f"{i:03d}.png"
        )
        rows.append(
            f"{i:03d}.png,{i % 3},{t * 0.5},{video}" if labels else f"{i:03d}.png,{t * 0.5},{video}"
        )
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def _module(root, **kwargs):
    defaults = dict(root=root, image_size=16, num_blocks=5, split_gap=1.0, batch_size=8)
    return FramesDataModule(**{**defaults, **kwargs})


def test_split_is_leak_free_and_batches_are_uint8(tmp_path):
    dm = _module(_folder(tmp_path))
    dm.setup()
    assert dm.frames.images.shape == (60, 1, 16, 16) and dm.frames.images.dtype == torch.uint8
    assert set(dm.train_index.tolist()).isdisjoint(dm.val_index.tolist())
    times, groups = dm.frames.times, dm.frames.groups
    for i in dm.train_index:
        same_video_val = dm.val_index[groups[dm.val_index] == groups[i]]
        assert (times[same_video_val] - times[i]).abs().min() > 1.0
    batch = next(iter(dm.train_dataloader()))
    assert batch["images"].shape == (8, 1, 16, 16) and batch["images"].dtype == torch.uint8
    assert torch.equal(batch["label"], dm.frames.labels[batch["index"]])
    assert set(batch["index"].tolist()) <= set(dm.train_index.tolist())
    val_indices = torch.cat([b["index"] for b in dm.val_dataloader()])
    assert torch.equal(val_indices, dm.val_index)


def test_split_none_and_video(tmp_path):
    root = _folder(tmp_path)
    dm = _module(root, split="none")
    dm.setup()
    assert dm.train_index.numel() == dm.val_index.numel() == 60
    dm = _module(root, split="video", val_fraction=0.5)
    dm.setup()
    assert dm.frames.groups[dm.val_index].unique().numel() == 1


def test_unlabelled_data_and_m_per_class(tmp_path):
    dm = _module(_folder(tmp_path, labels=False), require_labels=False, sampler="m_per_class")
    dm.setup()
    assert dm.frames.labels is None
    with pytest.raises(ConfigError, match="data.sampler=m_per_class needs labels"):
        dm.train_dataloader()


def test_m_per_class_batches(tmp_path):
    dm = _module(_folder(tmp_path), sampler="m_per_class", m_per_class=4)
    dm.setup()
    for batch in dm.train_dataloader():
        counts = torch.bincount(batch["label"])
        assert sorted(counts[counts > 0].tolist()) == [4, 4]


def test_unknown_sampler():
    with pytest.raises(ConfigError, match="data.sampler"):
        FramesDataModule(sampler="balanced")


def test_register_translates_jittered_frames_onto_one_position(tmp_path):
    (tmp_path / "frames").mkdir()
    generator = np.random.default_rng(0)
    rows = ["frame,label,time"]
    for i in range(20):
        image = np.zeros((32, 32), np.uint8)
        dy, dx = generator.integers(-3, 4, size=2)
        image[10 + dy : 20 + dy, 12 + dx : 18 + dx] = 220
        Image.fromarray(image).save(tmp_path / "frames" / f"{i:02d}.png")
        rows.append(f"{i:02d}.png,{i % 2},{i * 0.25}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    plain = _module(tmp_path, image_size=32, num_blocks=2, split_gap=0.0, batch_size=4)
    aligned = _module(tmp_path, image_size=32, num_blocks=2, split_gap=0.0, batch_size=4,
                      register=True)  # fmt: skip
    plain.setup(), aligned.setup()
    spread = lambda frames: float(frames.images.double().std(dim=0).mean())  # noqa: E731
    assert spread(aligned.frames) < 0.25 * spread(plain.frames)
    assert any(note.startswith("data.register:") for note in aligned.frames.notes)
    with pytest.raises(ConfigError, match="data.register='yes'"):
        _module(tmp_path, register="yes")


def test_plain_data_config_loads_as_the_data_module_does(tmp_path):
    """data/loading.load_data (evaluation, no Lightning) = the data module's frames and split,
    knows exactly the data module's keys and refuses another, as its constructor does."""
    _folder(tmp_path)
    data = {"_target_": "x", "root": str(tmp_path), "num_blocks": 5, "split_gap": 1.0}
    dm = FramesDataModule(root=tmp_path, num_blocks=5, split_gap=1.0, drop_last=False)
    dm.prepare_data()
    dm.setup()
    loaded = load_data(data)
    assert torch.equal(loaded.frames.images, dm.frames.images)
    assert torch.equal(loaded.train_index, dm.train_index)
    assert torch.equal(loaded.val_index, dm.val_index)
    assert (loaded.split_mode, loaded.split_gap) == ("blocks", 1.0)
    assert set(KEYS) == set(inspect.signature(FramesDataModule).parameters)
    with pytest.raises(ConfigError, match=r"^data.foo: not a data setting \(known: batch_size, "):
        load_data({**data, "foo": 1})
    with pytest.raises(ConfigError, match="data.sampler='x'"):
        load_data({**data, "sampler": "x"})
