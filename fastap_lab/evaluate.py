"""``python -m fastap_lab.evaluate ckpt_path=<run folder or .ckpt> [data=…] [eval.*=…]``.

Embeds every frame with the checkpoint's model (rebuilt from the config stored in it) or a
baseline (``baseline=pixels`` / ``baseline=untrained``), then writes into ``<run>/inference/`` (or
``inference-2``, … — never over an earlier evaluation; Hydra's run folder when the checkpoint
is not inside a run folder): embeddings.npy, labels.npy, frames.csv, metrics.json,
per_query.csv, retrieval_tables.md + tables/*.csv, retrieval_grid.png, diagnostics.json/.png,
evaluate_config.yaml. Every file is written atomically.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fastap_lab import io
from fastap_lab.build import build_datamodule
from fastap_lab.checkpoints import resolve_checkpoint_path
from fastap_lab.cli import EXIT_USER_ERROR, run_task
from fastap_lab.compose import compose_config
from fastap_lab.data.queries import Query, frame_query, load_queries, load_query_files
from fastap_lab.embedders import checkpoint_embedder, untrained_embedder
from fastap_lab.errors import ConfigError
from fastap_lab.evaluation import adapt, guard, report
from fastap_lab.evaluation.data_settings import (
    DataSettings,
    checkpoint_normalisation,
    overridden_data_keys,
    resolve_data_settings,
)
from fastap_lab.evaluation.embed import Embedder, pick_device, pixels_embedder
from fastap_lab.evaluation.run import (
    EvalSettings,
    EvaluatedFrames,
    evaluate_into,
    evaluation_index,
)
from fastap_lab.evaluation.surrogate_embedding import bridged_embedder, surrogate_embedder
from fastap_lab.respiration.placement import orientation_warning
from fastap_lab.validate import check_data

log = logging.getLogger(__name__)
BASELINES = ("pixels", "untrained", "surrogate")


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
    """The embedder of ``baseline=pixels`` or ``baseline=untrained``."""
    device = pick_device(cfg.eval.device)
    if kind == "pixels":
        return pixels_embedder(frames.images, cfg.baseline.get("size"), device)
    if kind == "surrogate":
        return surrogate_embedder(frames, device)
    return untrained_embedder(data, str(cfg.paths.cache_dir), int(cfg.eval.seed), device)


def adapted_queries(cfg: DictConfig, embedder: Embedder, target_images, target, mode):
    """Adapt the embedder to the external queries as ``eval.adapt`` says.

    (embedder of the external queries, metrics.json ``adaptation``) of ``eval.adapt``, or
    (None, None) when it is off; mode ``auto``: the bridge for the surrogate, AdaBN otherwise.
    """
    if not target:
        return None, None
    if mode == "auto":
        mode = "bridge" if embedder.kind == "surrogate" else "adabn"
    if mode == "bridge":
        adapted = bridged_embedder(embedder, target_images, target)
        if warning := orientation_warning(adapted[1], "eval.adapt"):
            log.warning("%s", warning)
        return adapted
    return adapt.adapted_embedder(embedder, target_images, int(cfg.eval.batch_size), target, mode)


def collect_queries(cfg: DictConfig, frames, channels: int, image_size: int) -> list[Query]:
    """Internal frames ``eval.queries.internal`` then the external query images."""
    spec = cfg.eval.queries
    queries = []
    for i in spec.internal:
        if not 0 <= int(i) < len(frames):
            raise ConfigError(
                f"eval.queries.internal: frame {i} does not exist (0..{len(frames) - 1})"
            )
        queries.append(frame_query(frames, int(i)))
    images = (
        load_queries(frames.root, channels=channels, image_size=image_size)
        if spec.from_data
        else []
    )
    if spec.external:
        labels = None if spec.external_labels is None else list(spec.external_labels)
        images += load_query_files(
            list(spec.external), channels=channels, image_size=image_size, labels=labels
        )
    return queries + images


def check_eval_values(cfg: DictConfig) -> None:
    """Out-of-range eval values, refused before the output folder is claimed."""
    ks = list(cfg.eval.ks)
    if not ks or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in ks):
        raise ConfigError(f"eval.ks={ks}: give one or more positive integers, e.g. [1,5,10]")
    for field in ("table_k", "batch_size"):
        value = cfg.eval[field]
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"eval.{field}={value!r}: must be a positive integer")


def output_dir(cfg: DictConfig, checkpoint: Path | None) -> Path:
    """``<run>/inference[-N]`` for a checkpoint inside a run folder, else Hydra's run folder."""
    if checkpoint is not None and checkpoint.parent.name == "checkpoints":
        return report.claim_output_dir(checkpoint.parent.parent / "inference")
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def evaluate(cfg: DictConfig, overrides: list[str] | None = None) -> dict:
    """Run the evaluation described by ``cfg`` (conf/evaluate.yaml); returns metrics.json.

    ``overrides``: the command-line overrides ``cfg`` was composed with; the data.* keys among
    them replace the checkpoint's data settings (None: only the non-null keys of a ``data``
    node without a group count as given).
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
    datamodule = build_datamodule(OmegaConf.create({"data": data}))
    datamodule.prepare_data()
    datamodule.setup()
    frames = datamodule.frames
    evaluated = EvaluatedFrames(frames, datamodule.train_index, datamodule.val_index,
                                datamodule.split["split"], float(datamodule.split["gap"]))  # fmt: skip
    # Bad queries / split fail here, before any embedding work or output folder.
    queries = collect_queries(cfg, frames, data["channels"], data["image_size"])
    check_eval_values(cfg)
    settings = eval_settings(cfg)
    evaluation_index(settings, evaluated)
    target, mode = adapt.check_adapt(cfg.eval.get("adapt"))
    target_images = (
        adapt.load_target_images(target, channels=data["channels"], image_size=data["image_size"])
        if target
        else None
    )
    embedder = embedder or baseline_embedder(cfg, kind, data, frames)
    adapted = adapted_queries(cfg, embedder, target_images, target, mode)
    out = output_dir(cfg, checkpoint if kind == "checkpoint" else None)
    log.info(
        "evaluating %s on %d frames (%s) -> %s", _describe(embedder), len(frames), frames.root, out
    )
    normalisation = checkpoint_normalisation(embedder.run_config if embedder.stage else None)
    log.info("%s", data_used.describe(normalisation))
    used = {"data_settings": data_used.record(), "normalisation": normalisation}
    io.write_text(out / "evaluate_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    record = evaluate_into(out, settings, evaluated, embedder, queries, used, adapted)
    _log_summary(record, out)
    return record


def eval_settings(cfg: DictConfig) -> EvalSettings:
    """``cfg.eval`` as the library's EvalSettings (values checked by check_eval_values)."""
    spec = cfg.eval
    return EvalSettings(
        ks=tuple(spec.ks), split=spec.split, exclusion_window=spec.exclusion_window,
        batch_size=int(spec.batch_size), table_k=int(spec.table_k),
        include_self=bool(spec.queries.include_self), max_pairs=int(spec.max_pairs),
        seed=int(spec.seed), pixel_baseline=bool(spec.get("pixel_baseline", True)),
    )  # fmt: skip


def _stored_config(checkpoint: Path | None) -> dict | None:
    """A baseline given a ckpt_path evaluates on that run's data; only the config is read."""
    if checkpoint is None:
        return None
    from fastap_lab.checkpoints import CHECKPOINT_KEY, load_checkpoint

    return (load_checkpoint(checkpoint).get(CHECKPOINT_KEY) or {}).get("config")


def _describe(embedder: Embedder) -> str:
    if embedder.kind == "checkpoint":
        return f"{embedder.stage} checkpoint {embedder.checkpoint}"
    return f"the {embedder.kind} baseline"


def _log_summary(record: dict, out: Path) -> None:
    for note in record["notes"]:
        log.warning("note: %s", note)
    metrics = record["metrics"]
    if metrics is None:
        log.warning(
            "metrics skipped: the data has no labels; embeddings, tables, grid and diagnostics"
            " are in %s",
            out,
        )
        return
    if record["metrics_warning"]:
        log.warning("metrics meaningless: %s", record["metrics_warning"])
    ranked = ", ".join(f"P@{k} {metrics[f'precision@{k}']:.3f}" for k in metrics["ks"])
    log.info(
        "%s split, %d queries (%d without relevant frames), exclusion window %g (%s): mAP %.4f, %s",
        record["split"], metrics["num_queries"], metrics["num_queries_without_relevant"],
        record["exclusion_window"], record["exclusion_window_source"], metrics["mAP"], ranked,
    )  # fmt: skip
    verdict = guard.verdict_line(metrics, record.get("pixel_baseline"))
    if verdict:
        (log.info if record["pixel_baseline"]["beats_pixels"] else log.warning)("%s", verdict)
    log.info("outputs: %s", out)


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> dict:
    """Entry point (Hydra): run :func:`evaluate`, user errors as one ``error:`` line."""
    return run_task(evaluate, cfg, list(HydraConfig.get().overrides.task))


# Baselines used to be model options; the old words get one line saying the new ones.
RENAMED = {"model=pixels": "baseline=pixels", "model=untrained": "baseline=untrained"}


def refuse_renamed(argv: list[str]) -> None:
    """Exit with one ``error:`` line when ``argv`` uses an old baseline word."""
    for arg in argv:
        if arg in RENAMED:
            print(f"error: {arg} is now {RENAMED[arg]} (a baseline is an evaluation choice,"
                  " not a model)", file=sys.stderr)  # fmt: skip
            raise SystemExit(EXIT_USER_ERROR)


if __name__ == "__main__":
    refuse_renamed(sys.argv[1:])
    main()
