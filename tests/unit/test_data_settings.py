"""Which data settings an evaluation uses (fastap_lab/evaluation/data_settings.py): the
checkpoint's, a data group's frames, keys given explicitly, the training default."""

from __future__ import annotations

from fastap_lab.evaluation.data_settings import (
    PREPROCESSING,
    checkpoint_normalisation,
    overridden_data_keys,
    resolve_data_settings,
)

STORED = {
    "_target_": "fastap_lab.lit.datamodule.FramesDataModule", "root": None, "video": "/v/clip.mp4",
    "labels_csv": "/v/labels.csv", "phantom": None, "channels": 1, "image_size": 32,
    "require_labels": True, "split": "blocks", "val_fraction": 0.25, "num_blocks": 4,
    "split_gap": 1.0, "batch_size": 16, "register": True,
}  # fmt: skip


def group(**values) -> dict:
    """A data group as composed: its defaults (64 px, 10 blocks, ...) plus ``values``."""
    defaults = {**STORED, "video": None, "labels_csv": None, "image_size": 64, "num_blocks": 10}
    return {**defaults, "val_fraction": 0.2, "split_gap": 2.0, **values}


def placeholder(**values) -> dict:
    return {**{key: None for key in STORED if key != "_target_"}, **values}


def never(*_):
    raise AssertionError("the training default is not needed here")


def test_overridden_data_keys():
    overrides = [
        "ckpt_path=run", "data=frames", "data.root=/x", "+data.image_size=48",
        "data.phantom.seed=3", "~data.video", "eval.ks=[1]", "data.split_gap=0",
    ]  # fmt: skip
    assert overridden_data_keys(overrides) == {"root", "image_size", "phantom", "split_gap"}


def test_a_group_changes_the_frames_only():
    settings = resolve_data_settings(
        group(root="/new"), STORED, never, overridden_data_keys(["data=frames", "data.root=/new"])
    )
    assert settings.data["root"] == "/new" and settings.data["video"] is None
    assert settings.data["labels_csv"] is None  # not the checkpoint's CSV beside other frames
    for key in PREPROCESSING:
        assert settings.data[key] == STORED[key] and settings.origins[key] == "checkpoint"
    assert settings.origins["root"] == "command line"
    assert "image_size=32" in settings.describe() and "(checkpoint)" in settings.describe()


def test_explicit_keys_win_with_or_without_a_group():
    with_group = resolve_data_settings(
        group(root="/new", image_size=64), STORED, never, {"root", "image_size"}
    )
    without = resolve_data_settings(placeholder(root="/new", image_size=64), STORED, never, set())
    for settings in (with_group, without):
        assert settings.data["image_size"] == 64
        assert settings.origins["image_size"] == "command line"
        assert settings.data["num_blocks"] == 4 and settings.data["video"] is None
    assert without.record()["video"]["from"].startswith("not used")


def test_nothing_given_is_the_checkpoint_config():
    settings = resolve_data_settings(placeholder(), STORED, never, set())
    assert settings.data == STORED and set(settings.origins.values()) == {"checkpoint"}
    assert settings.source() == "video=/v/clip.mp4 labels_csv=/v/labels.csv"


def test_labels_csv_alone_keeps_the_checkpoint_video():
    settings = resolve_data_settings(placeholder(labels_csv="/other.csv"), STORED, never, set())
    assert settings.data["video"] == "/v/clip.mp4" and settings.data["labels_csv"] == "/other.csv"


def test_without_a_checkpoint_the_group_else_the_training_default():
    chosen = resolve_data_settings(group(root="/x"), None, never, {"root"})
    assert chosen.data["image_size"] == 64 and chosen.origins["image_size"] == "data group"
    default = resolve_data_settings(placeholder(root="/x"), None, lambda: group(), set())
    assert default.data["root"] == "/x" and default.origins["num_blocks"] == "training default"


def test_normalisation_comes_from_the_checkpoint_augment():
    assert checkpoint_normalisation({"augment": {"mean": 0.3, "std": 0.25}}) == {
        "mean": 0.3,
        "std": 0.25,
    }
    assert checkpoint_normalisation(None) is None and checkpoint_normalisation({}) is None
