"""Evaluation as a library: embed the frames, score the evaluation split, write the files.

``python -m fastap_lab.evaluate`` (glue: :mod:`fastap_lab.evaluation_task`) resolves the config,
the data, the embedder and the queries, then calls :func:`evaluate_into`. Pure: no Lightning,
no Hydra — callable from a notebook with any :class:`~fastap_lab.evaluation.embed.Embedder` and
:class:`~fastap_lab.data.loading.SplitFrames`; :func:`eval_settings` turns the plain ``eval.*``
values into :class:`EvalSettings`.

Files written into ``out``: embeddings.npy, labels.npy, frames.csv, per_query.csv,
retrieval_tables.md + tables/*.csv, retrieval_grid.png, diagnostics.json/.png, metrics.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from fastap_lab import io
from fastap_lab.data.loading import SplitFrames
from fastap_lab.data.queries import Query
from fastap_lab.errors import ConfigError
from fastap_lab.evaluation import diagnostics, guard, report, tables
from fastap_lab.evaluation.embed import Embedder, embed_images, pixels_embedder
from fastap_lab.evaluation.grid import write_grid
from fastap_lab.evaluation.split import SplitMetrics, evaluate_split


@dataclass(frozen=True)
class EvalSettings:
    """The ``eval.*`` values evaluation uses (conf/evaluate.yaml documents each)."""

    ks: tuple[int, ...] = (1, 5, 10, 20, 50)
    split: str | None = None
    exclusion_window: float | None = None
    batch_size: int = 256
    table_k: int = 10
    include_self: bool = False
    max_pairs: int = 200_000
    seed: int = 0
    pixel_baseline: bool = True


def check_eval_values(values: Mapping) -> None:
    """Refuse out-of-range ``eval.*`` values (before the output folder is claimed)."""
    ks = list(values["ks"])
    if not ks or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in ks):
        raise ConfigError(f"eval.ks={ks}: give one or more positive integers, e.g. [1,5,10]")
    for field in ("table_k", "batch_size"):
        value = values[field]
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"eval.{field}={value!r}: must be a positive integer")


def eval_settings(values: Mapping) -> EvalSettings:
    """The plain ``eval.*`` values (conf/evaluate.yaml's ``eval``) as checked EvalSettings."""
    check_eval_values(values)
    return EvalSettings(
        ks=tuple(values["ks"]), split=values["split"],
        exclusion_window=values["exclusion_window"], batch_size=int(values["batch_size"]),
        table_k=int(values["table_k"]), include_self=bool(values["queries"]["include_self"]),
        max_pairs=int(values["max_pairs"]), seed=int(values["seed"]),
        pixel_baseline=bool(values.get("pixel_baseline", True)),
    )  # fmt: skip


def evaluate_into(
    out: Path,
    settings: EvalSettings,
    data: SplitFrames,
    embedder: Embedder,
    queries: list[Query],
    used: dict,
    adapted=(None, None),
) -> dict:
    """Run an evaluation into ``out``; returns metrics.json's record.

    Embed every frame, score the evaluation split and write the evaluation into ``out``
    (every file atomic, metrics.json last); returns metrics.json's record.

    ``used``: extra metrics.json entries (data settings, normalisation); ``adapted``: the
    (embedder, record) of ``eval.adapt`` for the external queries, or (None, None).
    """
    frames, notes = data.frames, list(data.frames.notes)
    notes += [f"query {q.name}: {note}" for q in queries for note in q.notes]
    embeddings = embed_images(embedder, frames.images, int(settings.batch_size))
    io.write_npy(out / "embeddings.npy", embeddings.numpy().astype("float32"))
    labels = frames.labels if frames.labels is not None else torch.full((len(frames),), -1)
    io.write_npy(out / "labels.npy", labels.numpy().astype("int64"))
    splits = report.split_names(len(frames), data.train_index, data.val_index)
    io.write_text(out / "frames.csv", report.frames_csv(frames, splits))
    split, index = evaluation_index(settings, data)  # checked by the caller too: cheap
    window, window_source = exclusion_window(settings, data)
    result = compute_metrics(settings, frames, embeddings.to(embedder.device), index, window, notes)
    summary = None if result is None else result.summary
    labels_warning = None if result is None else result.label_warning
    if result is not None:
        io.write_text(out / "per_query.csv", report.per_query_csv(frames, index, result.per_query))
    built = write_tables(out, settings, frames, embeddings, embedder, queries, adapted[0])
    pixels = pixel_guard(settings, frames, embedder, index, window, summary, queries)
    diagnosis = write_diagnostics(out, settings, frames, embeddings, index, split)
    record = {
        "model": embedder.kind, "checkpoint": None if embedder.checkpoint is None else str(embedder.checkpoint),
        "stage": embedder.stage, "embed_layer": embedder.embed_layer,
        "baseline": embedder.details or None, "data_root": str(frames.root),
        "channels": int(frames.images.shape[1]), "image_size": int(frames.images.shape[-1]),
        "split": split, "num_frames": len(frames), "num_frames_evaluated": int(index.numel()),
        "labels": frames.labels is not None, "exclusion_window": window,
        "exclusion_window_source": window_source, "ks_requested": list(settings.ks),
        "metrics": summary, "metrics_skipped": None if summary else "the data has no labels",
        "metrics_warning": labels_warning, **used,
        "positives_in_tables": {t.query.name: t.positives for t in built},
        "pixel_baseline": pixels, "adaptation": adapted[1],
        "diagnostics": {k: diagnosis[k] for k in ("fraction_pairs_above_0.99", "effective_rank")},
        "embedding_dim": int(embeddings.shape[1]), "device": str(embedder.device),
        "torch_version": torch.__version__, "utc_time": datetime.now(UTC).isoformat(timespec="seconds"),
        "notes": notes,
    }  # fmt: skip
    io.write_json(out / "metrics.json", report.json_safe(record))
    return record


def evaluation_index(settings: EvalSettings, data: SplitFrames) -> tuple[str, torch.Tensor]:
    """(``val`` | ``all``, int64 frame indices of the evaluation set)."""
    split = settings.split or ("all" if data.split_mode == "none" else "val")
    if split not in ("val", "all"):
        raise ConfigError(f"eval.split={split!r}: choose val or all")
    index = data.val_index if split == "val" else torch.arange(len(data.frames))
    if index.numel() < 2:
        raise ConfigError(f"eval.split={split}: only {index.numel()} frame(s); use eval.split=all")
    return split, index


def exclusion_window(settings: EvalSettings, data: SplitFrames) -> tuple[float, str]:
    """(the exclusion window, where it comes from): eval.exclusion_window, else data.split_gap."""
    if settings.exclusion_window is not None:
        return float(settings.exclusion_window), "eval.exclusion_window"
    return float(data.split_gap), "data.split_gap"


def compute_metrics(
    settings: EvalSettings, frames, embeddings, index, window, notes
) -> SplitMetrics | None:
    """All-vs-all metrics of the evaluation set, or None without labels.

    All-vs-all metrics of the evaluation set, or None without labels; a dropped-K note is
    appended to ``notes``.

    ``embeddings``: [N, D] of every frame, on the device the search runs on.
    """
    if frames.labels is None:
        return None  # said on the console and in metrics.json ("metrics_skipped")
    result = evaluate_split(
        embeddings[index.to(embeddings.device)], frames.labels[index], frames.times[index],
        frames.groups[index], exclusion_window=window, ks=list(settings.ks),
    )  # fmt: skip
    notes += [result.ks_note] if result.ks_note else []
    return result


def write_tables(
    out: Path, settings: EvalSettings, frames, embeddings, embedder, queries, external_embedder=None
) -> list[tables.RetrievalTable]:
    """Write the retrieval tables of the queries; returns them.

    ``external_embedder`` (eval.adapt): embeds the external queries; internal ones are
    gallery frames and keep ``embedder``.
    """
    if not queries:
        return []
    query_embeddings = torch.cat([
        embed_images(external_embedder if q.kind == "external" and external_embedder
                     else embedder, q.image[None], 1)
        for q in queries
    ])  # fmt: skip
    built = tables.build_tables(
        queries, query_embeddings.to(embedder.device), embeddings.to(embedder.device),
        frames.labels, int(settings.table_k), bool(settings.include_self),
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


def write_diagnostics(
    out: Path, settings: EvalSettings, frames, embeddings, index, split: str
) -> dict:
    """Write the embedding diagnostics of the ``split`` frames; returns their summary."""
    embeddings = embeddings[index]
    labels = None if frames.labels is None else frames.labels[index]
    summary, similarities = diagnostics.diagnose(
        embeddings, labels, int(settings.max_pairs), int(settings.seed)
    )
    summary = {"split": split, **summary}
    io.write_json(out / "diagnostics.json", report.json_safe(summary))
    diagnostics.plot_diagnostics(
        out / "diagnostics.png", summary, similarities, diagnostics.dimension_std(embeddings)
    )
    return summary


def pixel_guard(
    settings: EvalSettings, frames, embedder, index, window, summary, queries
) -> dict | None:
    """The raw-pixel guard: raw pixels scored like the model.

    metrics.json's ``pixel_baseline`` (evaluation/guard.py): raw pixels scored on the same
    frames, split, exclusion window and queries; None when off, without labels, or for pixels.
    """
    if not settings.pixel_baseline or summary is None or embedder.kind == "pixels":
        return None
    pixels = pixels_embedder(frames.images, guard.PIXEL_SIZE, embedder.device)
    embeddings = embed_images(pixels, frames.images, int(settings.batch_size))
    scores = compute_metrics(
        settings, frames, embeddings.to(pixels.device), index, window, []
    ).summary
    positives = {}
    if queries:  # the tables' positive counts, as for the model (cf. write_tables)
        query_embeddings = embed_images(pixels, torch.stack([q.image for q in queries]), 1)
        built = tables.build_tables(
            queries, query_embeddings, embeddings, frames.labels, int(settings.table_k),
            bool(settings.include_self),
        )  # fmt: skip
        positives = {t.query.name: t.positives for t in built}
    return guard.pixel_record(summary, scores, guard.PIXEL_SIZE, positives)
