"""A data config loaded: its values checked, the frames prepared, decoded, registered and split.

The one implementation behind the Lightning data module (``prepare_data`` / ``setup`` of
:class:`fastap_lab.lit.datamodule.FramesDataModule`) and the evaluation (:func:`load_data` on
the plain data dict): the phantom is generated once when it is the source, the frames are
decoded (:mod:`fastap_lab.data.sources`), registered when ``data.register`` asks, and split
leak-free (:mod:`fastap_lab.data.splits`). Pure: no Lightning, no Hydra.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from fastap_lab.data.frames import FrameSet
from fastap_lab.data.sources import SOURCE_FIELDS, load_source, phantom_root
from fastap_lab.data.splits import check_split_settings, split_frames
from fastap_lab.errors import ConfigError

SAMPLERS = ("random", "m_per_class")
# The values a data config falls back to (conf/data/frames.yaml documents each), as the
# data module's own defaults.
DEFAULTS = {
    "sampler": "random", "split": "blocks", "val_fraction": 0.2, "num_blocks": 10,
    "split_gap": 0.0, "batch_size": 128, "eval_batch_size": 256, "register": False,
}  # fmt: skip
CHECKED = ("sampler", "split", "val_fraction", "batch_size", "eval_batch_size", "register")
# Every key of a data config: the data module's parameters (besides Hydra's ``_target_``).
KEYS = (*SOURCE_FIELDS, *DEFAULTS, "m_per_class", "drop_last", "num_workers")


@dataclass
class SplitFrames:
    """A data config's frames and their split.

    The frames and their split: ``train_index`` / ``val_index`` int64, ``split_mode`` the
    data.split setting (``none`` evaluates all frames), ``split_gap`` data.split_gap.
    """

    frames: FrameSet
    train_index: torch.Tensor
    val_index: torch.Tensor
    split_mode: str
    split_gap: float


def check_data_values(
    *, sampler, split, val_fraction, batch_size, eval_batch_size, register
) -> None:
    """Refuse a data config's bad values before any data is generated or read."""
    if sampler not in SAMPLERS:
        raise ConfigError(f"data.sampler={sampler!r}: choose one of {list(SAMPLERS)}")
    check_split_settings(split, val_fraction)
    for field, size in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        if size < 1:
            raise ConfigError(f"data.{field}={size}: must be >= 1")
    check_training_batch_size(batch_size)
    if not isinstance(register, bool):
        raise ConfigError(f"data.register={register!r}: must be true or false")


def check_training_batch_size(batch_size: int) -> None:
    """Raise ConfigError for a training batch of fewer than 2 frames.

    A training batch needs 2+ frames: BatchNorm's batch statistics and every pair-based
    loss (SimSiam's two views of a batch, FastAP's ranking) are undefined on one frame.
    """
    if batch_size == 1:
        raise ConfigError(
            "data.batch_size=1: training needs at least 2 frames per batch (BatchNorm and the"
            " losses compare frames within a batch); use data.batch_size=2 or more"
        )


def prepare_source(source: Mapping) -> None:
    """Generate the phantom (once, cached) when it is the data source.

    ``source``: :func:`~fastap_lab.data.sources.load_source`'s keywords. Under DDP this runs on
    one process, before the ranks read the frames.
    """
    if all(source.get(key) is None for key in ("root", "video", "path")) and source.get("phantom"):
        phantom_root(source["phantom"], source.get("cache_dir", "."))


def load_split(
    source: Mapping, split: Mapping, register: bool
) -> tuple[FrameSet, torch.Tensor, torch.Tensor]:
    """(frames, train_index, val_index): the source decoded, registered if asked, then split.

    ``source``: :func:`~fastap_lab.data.sources.load_source`'s keywords; ``split``:
    :func:`~fastap_lab.data.splits.split_frames`' (``split``, ``val_fraction``,
    ``num_blocks``, ``gap``).
    """
    frames = load_source(**source)
    if register:
        from fastap_lab.respiration.register import register_frameset

        frames = register_frameset(frames)
    train_index, val_index = split_frames(frames.times, frames.groups, **split)
    return frames, train_index, val_index


def load_data(data: Mapping) -> SplitFrames:
    """The frames of a plain data config (conf/data/*.yaml as a dict), split.

    The data module's path without Lightning: the values checked, the phantom generated when
    it is the source, the frames decoded, registered if asked and split. Keys about batches
    are only checked; ``_target_`` is ignored and any other key it does not know is refused
    with one ConfigError line.
    """
    check_data_keys(data)
    values = {**DEFAULTS, **{key: data[key] for key in DEFAULTS if key in data}}
    check_data_values(**{key: values[key] for key in CHECKED})
    source = {name: data[name] for name in SOURCE_FIELDS if name in data}
    prepare_source(source)
    split = {
        "split": values["split"], "val_fraction": values["val_fraction"],
        "num_blocks": values["num_blocks"], "gap": values["split_gap"],
    }  # fmt: skip
    frames, train_index, val_index = load_split(source, split, values["register"])
    return SplitFrames(frames, train_index, val_index, split["split"], float(split["gap"]))


def check_data_keys(data: Mapping) -> None:
    """One ConfigError line naming any key of ``data`` that is not a data setting.

    ``_target_`` is allowed (a Hydra config's); e.g. ``+data.fooo=1`` or a misspelt key in a
    data group file.
    """
    unknown = sorted(set(data) - set(KEYS) - {"_target_"})
    if unknown:
        names = ", ".join(f"data.{key}" for key in unknown)
        raise ConfigError(
            f"{names}: not a data setting (known: {', '.join(sorted(KEYS))}); remove it or check"
            " its spelling"
        )
