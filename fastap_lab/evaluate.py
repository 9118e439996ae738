"""``python -m fastap_lab.evaluate ckpt_path=<run folder or .ckpt> [data=…] [eval.*=…]``.

Embeds every frame with the checkpoint's model (rebuilt from the config stored in it) or a
baseline (``model=pixels`` / ``model=untrained``), then writes into ``<run>/inference/`` (or
``inference-2``, … — never over an earlier evaluation; Hydra's run folder when the checkpoint
is not inside a run folder): embeddings.npy, labels.npy, frames.csv, metrics.json,
per_query.csv, retrieval_tables.md + tables/*.csv, retrieval_grid.png, diagnostics.json/.png,
evaluate_config.yaml. Every file is written atomically.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fastap_lab import io
from fastap_lab.build import build_datamodule
from fastap_lab.checkpoints import resolve_checkpoint_path
from fastap_lab.cli import run_task
from fastap_lab.compose import compose_config
from fastap_lab.data.queries import Query, frame_query, load_queries, load_query_files
from fastap_lab.embedders import checkpoint_embedder, untrained_embedder
from fastap_lab.errors import ConfigError
from fastap_lab.evaluation import adapt, diagnostics, guard, report, tables
from fastap_lab.evaluation.data_settings import (
    DataSettings,
    checkpoint_normalisation,
    overridden_data_keys,
    resolve_data_settings,
)
from fastap_lab.evaluation.embed import (
    Embedder,
    embed_frames,
    embed_images,
    pick_device,
    pixels_embedder,
)
from fastap_lab.evaluation.grid import write_grid
from fastap_lab.evaluation.split import evaluate_split
from fastap_lab.retrieval.metrics import single_label_warning
from fastap_lab.validate import check_data

log = logging.getLogger(__name__)
BASELINES = ("pixels", "untrained")


def model_kind(cfg: DictConfig) -> str:
    model = cfg.get("model")
    if model is None:
        return "checkpoint"
    if model.get("kind") not in BASELINES:
        raise ConfigError(
            "evaluate takes the model from ckpt_path; model= only selects a baseline:"
            f" choose one of {list(BASELINES)}, or leave model unset"
        )
    return model.kind


def data_settings(cfg: DictConfig, run_config: dict | None, overrides) -> DataSettings:
    """The checkpoint run's data config, with the frames and the data.* keys this command
    gives (see fastap_lab/evaluation/data_settings.py); the cache folder is this machine's."""

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
    device = pick_device(cfg.eval.device)
    if kind == "pixels":
        return pixels_embedder(frames.images, cfg.model.get("size"), device)
    return untrained_embedder(data, str(cfg.paths.cache_dir), int(cfg.eval.seed), device)


def evaluation_index(cfg: DictConfig, datamodule) -> tuple[str, torch.Tensor]:
    """(``val`` | ``all``, int64 frame indices of the evaluation set)."""
    split = cfg.eval.split or ("all" if datamodule.split["split"] == "none" else "val")
    if split not in ("val", "all"):
        raise ConfigError(f"eval.split={split!r}: choose val or all")
    index = datamodule.val_index if split == "val" else torch.arange(len(datamodule.frames))
    if index.numel() < 2:
        raise ConfigError(f"eval.split={split}: only {index.numel()} frame(s); use eval.split=all")
    return split, index


def compute_metrics(
    cfg, frames, embeddings, index, window, notes
) -> tuple[dict | None, dict | None]:
    """All-vs-all metrics of the evaluation set: (summary, per-query tensors), or (None, None).

    ``embeddings``: [N, D] of every frame, on the device the search runs on.
    """
    if frames.labels is None:
        return None, None  # said on the console and in metrics.json ("metrics_skipped")
    result = evaluate_split(
        embeddings[index.to(embeddings.device)], frames.labels[index], frames.times[index],
        frames.groups[index], exclusion_window=window, ks=list(cfg.eval.ks),
    )  # fmt: skip
    notes += [result.ks_note] if result.ks_note else []
    return result.summary, result.per_query


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


def write_tables(
    out: Path, cfg, frames, embeddings, embedder, queries, external_embedder=None
) -> list[tables.RetrievalTable]:
    """``external_embedder`` (eval.adapt): embeds the external queries; internal ones are
    gallery frames and keep ``embedder``."""
    if not queries:
        return []
    query_embeddings = torch.cat([
        embed_images(external_embedder if q.kind == "external" and external_embedder
                     else embedder, q.image[None], 1)
        for q in queries
    ])  # fmt: skip
    built = tables.build_tables(
        queries, query_embeddings.to(embedder.device), embeddings.to(embedder.device),
        frames.labels, int(cfg.eval.table_k), bool(cfg.eval.queries.include_self),
    )  # fmt: skip
    for position, table in enumerate(built):
        io.write_text(
            out / "tables" / tables.table_file_name(position, table),
            tables.table_csv(table, frames),
        )
    io.write_text(
        out / "retrieval_tables.md",
        tables.tables_markdown(built, frames, f"Retrieval tables ({out})"),
    )
    write_grid(out / "retrieval_grid.png", built, frames)
    return built


def write_diagnostics(out: Path, cfg, frames, embeddings, index, split: str) -> dict:
    embeddings = embeddings[index]
    labels = None if frames.labels is None else frames.labels[index]
    summary, similarities = diagnostics.diagnose(
        embeddings, labels, int(cfg.eval.max_pairs), int(cfg.eval.seed)
    )
    summary = {"split": split, **summary}
    io.write_json(out / "diagnostics.json", report.json_safe(summary))
    diagnostics.plot_diagnostics(
        out / "diagnostics.png", summary, similarities, diagnostics.dimension_std(embeddings)
    )
    return summary


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
            " or model=pixels / model=untrained for a baseline without a checkpoint"
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
    settings = data_settings(cfg, run_config, overrides)
    data = settings.data
    datamodule = build_datamodule(OmegaConf.create({"data": data}))
    datamodule.prepare_data()
    datamodule.setup()
    frames = datamodule.frames
    # Bad queries / split fail here, before any embedding work or output folder.
    queries = collect_queries(cfg, frames, data["channels"], data["image_size"])
    evaluation_index(cfg, datamodule)
    check_eval_values(cfg)
    target, mode = adapt.check_adapt(cfg.eval.get("adapt"))
    target_images = (
        adapt.load_target_images(target, channels=data["channels"], image_size=data["image_size"])
        if target
        else None
    )
    embedder = embedder or baseline_embedder(cfg, kind, data, frames)
    adapted = (
        adapt.adapted_embedder(embedder, target_images, int(cfg.eval.batch_size), target, mode)
        if target
        else (None, None)
    )
    out = output_dir(cfg, checkpoint if kind == "checkpoint" else None)
    log.info(
        "evaluating %s on %d frames (%s) -> %s", _describe(embedder), len(frames), frames.root, out
    )
    normalisation = checkpoint_normalisation(embedder.run_config if embedder.stage else None)
    log.info("%s", settings.describe(normalisation))
    used = {"data_settings": settings.record(), "normalisation": normalisation}
    return _evaluate_into(out, cfg, datamodule, embedder, queries, used, adapted)


def _evaluate_into(
    out: Path,
    cfg: DictConfig,
    datamodule,
    embedder: Embedder,
    queries,
    used: dict,
    adapted=(None, None),
) -> dict:
    frames, notes = datamodule.frames, list(datamodule.frames.notes)
    notes += [f"query {q.name}: {note}" for q in queries for note in q.notes]
    embeddings = embed_frames(embedder, datamodule, int(cfg.eval.batch_size))
    io.write_text(out / "evaluate_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    io.write_npy(out / "embeddings.npy", embeddings.numpy().astype("float32"))
    labels = frames.labels if frames.labels is not None else torch.full((len(frames),), -1)
    io.write_npy(out / "labels.npy", labels.numpy().astype("int64"))
    splits = report.split_names(len(frames), datamodule.train_index, datamodule.val_index)
    io.write_text(out / "frames.csv", report.frames_csv(frames, splits))
    split, index = evaluation_index(cfg, datamodule)  # checked before, recomputed: cheap
    window, window_source = _exclusion_window(cfg, datamodule)
    summary, per_query = compute_metrics(
        cfg, frames, embeddings.to(embedder.device), index, window, notes
    )
    labels_warning = None if summary is None else single_label_warning(frames.labels[index])
    if per_query is not None:
        io.write_text(out / "per_query.csv", report.per_query_csv(frames, index, per_query))
    built = write_tables(out, cfg, frames, embeddings, embedder, queries, adapted[0])
    pixel_guard = _pixel_guard(cfg, frames, embedder, index, window, summary, queries)
    diagnosis = write_diagnostics(out, cfg, frames, embeddings, index, split)
    record = {
        "model": embedder.kind, "checkpoint": None if embedder.checkpoint is None else str(embedder.checkpoint),
        "stage": embedder.stage, "embed_layer": embedder.embed_layer,
        "baseline": embedder.details or None, "data_root": str(frames.root),
        "channels": int(frames.images.shape[1]), "image_size": int(frames.images.shape[-1]),
        "split": split, "num_frames": len(frames), "num_frames_evaluated": int(index.numel()),
        "labels": frames.labels is not None, "exclusion_window": window,
        "exclusion_window_source": window_source, "ks_requested": list(cfg.eval.ks),
        "metrics": summary, "metrics_skipped": None if summary else "the data has no labels",
        "metrics_warning": labels_warning, **used,
        "positives_in_tables": {t.query.name: t.positives for t in built},
        "pixel_baseline": pixel_guard, "adaptation": adapted[1],
        "diagnostics": {k: diagnosis[k] for k in ("fraction_pairs_above_0.99", "effective_rank")},
        "embedding_dim": int(embeddings.shape[1]), "device": str(embedder.device),
        "torch_version": torch.__version__, "utc_time": datetime.now(UTC).isoformat(timespec="seconds"),
        "notes": notes,
    }  # fmt: skip
    io.write_json(out / "metrics.json", report.json_safe(record))
    _log_summary(record, out)
    return record


def _pixel_guard(cfg, frames, embedder, index, window, summary, queries) -> dict | None:
    """metrics.json's ``pixel_baseline`` (evaluation/guard.py): raw pixels scored on the same
    frames, split, exclusion window and queries; None when off, without labels, or for pixels."""
    if not cfg.eval.get("pixel_baseline", True) or summary is None or embedder.kind == "pixels":
        return None
    pixels = pixels_embedder(frames.images, guard.PIXEL_SIZE, embedder.device)
    embeddings = embed_images(pixels, frames.images, int(cfg.eval.batch_size))
    scores, _ = compute_metrics(cfg, frames, embeddings.to(pixels.device), index, window, [])
    positives = {}
    if queries:  # the tables' positive counts, as for the model (cf. write_tables)
        query_embeddings = embed_images(pixels, torch.stack([q.image for q in queries]), 1)
        built = tables.build_tables(
            queries, query_embeddings, embeddings, frames.labels, int(cfg.eval.table_k),
            bool(cfg.eval.queries.include_self),
        )  # fmt: skip
        positives = {t.query.name: t.positives for t in built}
    return guard.pixel_record(summary, scores, guard.PIXEL_SIZE, positives)


def _stored_config(checkpoint: Path | None) -> dict | None:
    """A baseline given a ckpt_path evaluates on that run's data; only the config is read."""
    if checkpoint is None:
        return None
    from fastap_lab.checkpoints import CHECKPOINT_KEY, load_checkpoint

    return (load_checkpoint(checkpoint).get(CHECKPOINT_KEY) or {}).get("config")


def _exclusion_window(cfg: DictConfig, datamodule) -> tuple[float, str]:
    if cfg.eval.exclusion_window is not None:
        return float(cfg.eval.exclusion_window), "eval.exclusion_window"
    return float(datamodule.split["gap"]), "data.split_gap"


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
    return run_task(evaluate, cfg, list(HydraConfig.get().overrides.task))


if __name__ == "__main__":
    main()
