"""Glue of an evaluation: a composed conf/evaluate.yaml config -> one run of the library.

:func:`evaluate` is what ``python -m fastap_lab.evaluate`` runs, what ``train.py`` runs after
training and what ``report/`` runs for a run folder not yet evaluated. It reads the config
and turns it into plain values: the model (a checkpoint's, rebuilt through the Lightning modules
by :mod:`fastap_lab.embedders`, or a baseline), the data settings (:func:`data_settings`, also
``embed.py``'s), then calls the pure core with them — :mod:`fastap_lab.data.loading` (frames
and split), :mod:`fastap_lab.data.queries`, :mod:`fastap_lab.evaluation.run` (settings, then
the evaluation itself), :mod:`fastap_lab.evaluation.adapt`, :mod:`fastap_lab.evaluation.console`.

Glue, not core: it reads OmegaConf configs, composes the training default with Hydra and
rebuilds networks with Lightning; what it calls takes plain values and needs none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from fastap_lab import io
from fastap_lab.checkpoints import resolve_checkpoint_path
from fastap_lab.cli import log_lines
from fastap_lab.compose import compose_config
from fastap_lab.data.loading import load_data
from fastap_lab.data.queries import collect_queries
from fastap_lab.embedders import checkpoint_embedder, untrained_embedder
from fastap_lab.errors import ConfigError
from fastap_lab.evaluation import adapt, console
from fastap_lab.evaluation.data_settings import (
    DataSettings,
    checkpoint_normalisation,
    overridden_data_keys,
    resolve_data_settings,
)
from fastap_lab.evaluation.embed import Embedder, pick_device, pixels_embedder
from fastap_lab.evaluation.report import evaluation_dir
from fastap_lab.evaluation.run import eval_settings, evaluate_into, evaluation_index
from fastap_lab.evaluation.surrogate_embedding import surrogate_embedder
from fastap_lab.respiration.placement import orientation_warning
from fastap_lab.runs import EVALUATION, run_of_checkpoint
from fastap_lab.validate import check_data

BASELINES = ("pixels", "untrained", "surrogate")
log = logging.getLogger("fastap_lab.evaluate")  # the command's name, when called from Python


def model_kind(cfg: DictConfig) -> str:
    """``checkpoint``, or the baseline chosen with ``baseline=pixels|untrained|surrogate``."""
    baseline = cfg.get("baseline")
    if baseline is None:
        return "checkpoint"
    if baseline.get("kind") not in BASELINES:
        raise ConfigError(
            f"baseline.kind={baseline.get('kind')!r}: choose one of {list(BASELINES)}"
        )
    return baseline.kind


def data_settings(cfg: DictConfig, run_config: dict | None, overrides) -> DataSettings:
    """The data settings of an evaluation: the checkpoint run's, with this command's keys.

    The checkpoint run's data config, with the frames and the data.* keys this command
    gives (see fastap_lab/evaluation/data_settings.py); the cache folder is this machine's.
    """

    def training_default() -> dict:
        train_cfg = compose_config(
            "train", [f"paths.cache_dir={cfg.paths.cache_dir}", "paths.output_dir=."]
        )
        return OmegaConf.to_container(train_cfg.data, resolve=True)

    command = OmegaConf.to_container(cfg.data, resolve=True) if cfg.get("data") else None
    stored = None if run_config is None else run_config["data"]
    settings = resolve_data_settings(
        command, stored, training_default, overridden_data_keys(overrides or [])
    )
    check_data(settings.data)
    # drop_last only matters to the training loader, which evaluation never uses.
    settings.data.update(cache_dir=str(cfg.paths.cache_dir), drop_last=False)
    return settings


def baseline_embedder(cfg: DictConfig, kind: str, data: dict, frames) -> Embedder:
    """The embedder of ``baseline=pixels``, ``baseline=untrained`` or ``baseline=surrogate``."""
    device = pick_device(cfg.eval.device)
    if kind == "pixels":
        return pixels_embedder(frames.images, cfg.baseline.get("size"), device)
    if kind == "surrogate":
        return surrogate_embedder(frames, device)
    return untrained_embedder(data, str(cfg.paths.cache_dir), int(cfg.eval.seed), device)


def evaluate(
    cfg: DictConfig, overrides: list[str] | None = None, logger: logging.Logger = log
) -> dict:
    """Run the evaluation described by ``cfg`` (conf/evaluate.yaml); returns metrics.json.

    ``overrides``: the command-line overrides ``cfg`` was composed with; the data.* keys among
    them replace the checkpoint's data settings (None: only the non-null keys of a ``data``
    node without a group count as given). ``logger``: the calling command's, which says
    the console lines.
    """
    kind = model_kind(cfg)
    if kind == "checkpoint" and not cfg.get("ckpt_path"):
        raise ConfigError(
            "ckpt_path is not set: give ckpt_path=<run folder> or ckpt_path=<file.ckpt>,"
            " or baseline=pixels / baseline=untrained for a baseline without a checkpoint"
        )
    checkpoint = (
        resolve_checkpoint_path(cfg.ckpt_path, "ckpt_path") if cfg.get("ckpt_path") else None
    )
    embedder = (
        checkpoint_embedder(checkpoint, pick_device(cfg.eval.device), cfg.eval.embed_layer)
        if kind == "checkpoint"
        else None
    )
    run_config = embedder.run_config if embedder else _stored_config(checkpoint)
    data_used = data_settings(cfg, run_config, overrides)
    data = data_used.data
    split = load_data(data)
    values = OmegaConf.to_container(cfg.eval, resolve=True)
    # Bad queries / split fail here, before any embedding work or output folder.
    queries = collect_queries(split.frames, values["queries"], channels=data["channels"],
                              image_size=data["image_size"])  # fmt: skip
    settings = eval_settings(values)
    evaluation_index(settings, split)
    target, mode = adapt.check_adapt(values.get("adapt"))
    target_images = (
        adapt.load_target_images(target, channels=data["channels"], image_size=data["image_size"])
        if target
        else None
    )
    embedder = embedder or baseline_embedder(cfg, kind, data, split.frames)
    adapted = adapt.adapted_queries(embedder, target_images, target, mode, settings.batch_size)
    if adapted[1] is not None and (warning := orientation_warning(adapted[1], "eval.adapt")):
        logger.warning("%s", warning)
    out = evaluation_dir(checkpoint if kind == "checkpoint" else None, cfg.paths.output_dir)
    normalisation = checkpoint_normalisation(embedder.run_config if embedder.stage else None)
    log_lines(logger, console.opening_lines(embedder, split.frames, out,
                                            data_used.describe(normalisation)))  # fmt: skip
    used = {"data_settings": data_used.record(), "normalisation": normalisation}
    io.write_text(out / "evaluate_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    record = evaluate_into(out, settings, split, embedder, queries, used, adapted)
    log_lines(logger, console.summary_lines(record, out))
    return record


def evaluate_checkpoint(
    checkpoint: Path,
    overrides: Sequence[str] = (),
    cache_dir: str | None = None,
    logger: logging.Logger = log,
) -> dict:
    """Evaluate a run's checkpoint into ``<run>/inference[-N]``; returns metrics.json's record.

    As ``python -m fastap_lab.evaluate ckpt_path=<checkpoint> OVERRIDES`` does: what ``train``
    runs after training (its ``eval_overrides``) and ``report`` for a run not yet evaluated.
    ``checkpoint``: a .ckpt inside ``<run>/checkpoints/`` or a run folder; ``cache_dir``
    replaces ``paths.cache_dir`` (e.g. the training run's).
    """
    overrides = list(overrides)
    cfg = compose_config("evaluate", overrides)
    run_dir = run_of_checkpoint(checkpoint)
    with open_dict(cfg):  # set here, not as overrides: paths need no quoting
        cfg.ckpt_path = str(checkpoint)
        if cache_dir is not None:
            cfg.paths.cache_dir = str(cache_dir)
        cfg.paths.output_dir = str(run_dir / EVALUATION)
    return evaluate(cfg, overrides, logger)


def _stored_config(checkpoint: Path | None) -> dict | None:
    """A baseline given a ckpt_path evaluates on that run's data; only the config is read."""
    if checkpoint is None:
        return None
    from fastap_lab.checkpoints import CHECKPOINT_KEY, load_checkpoint

    return (load_checkpoint(checkpoint).get(CHECKPOINT_KEY) or {}).get("config")
