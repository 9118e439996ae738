"""``python -m fastap_lab.embed ckpt_path=RUN [data=…] [out=DIR] [embed.*=…]``.

Embed every frame of a source once into a gallery folder (layout:
:mod:`fastap_lab.retrieval.gallery`) that ``python -m fastap_lab.search`` queries many times.
Written atomically (a temporary folder renamed into place) into ``out`` (which must not exist)
or ``<run>/gallery`` (``gallery-2``, … when taken). Options: conf/embed.yaml.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fastap_lab import __version__, io
from fastap_lab.checkpoints import file_sha256, resolve_checkpoint_path
from fastap_lab.cli import run_task
from fastap_lab.data.preprocess import spec_of_run
from fastap_lab.errors import ConfigError
from fastap_lab.evaluation.embed import Embedder, pick_device
from fastap_lab.evaluation.gallery_embed import embed_source
from fastap_lab.evaluation.report import json_safe, new_output_dir
from fastap_lab.retrieval.gallery import write_gallery

log = logging.getLogger(__name__)


def check_values(cfg: DictConfig) -> dict:
    """``cfg.embed`` checked (before any work)."""
    values = dict(cfg.embed)
    if not cfg.get("ckpt_path"):
        raise ConfigError("ckpt_path is not set: give ckpt_path=<run folder> or <file.ckpt>")
    for name in ("batch_size", "chunk_frames"):
        if isinstance(values[name], bool) or not isinstance(values[name], int) or values[name] < 1:
            raise ConfigError(f"embed.{name}={values[name]!r}: must be an integer >= 1")
    thumb = values["thumb_size"]
    if isinstance(thumb, bool) or not isinstance(thumb, int) or thumb < 0:
        raise ConfigError(f"embed.thumb_size={thumb!r}: an integer >= 0 (0: no thumbnails)")
    return values


def model_identity(embedder: Embedder, spec, dim: int) -> dict:
    """What made the embeddings: the gallery's and an export's ``model`` record."""
    return {
        "checkpoint": str(embedder.checkpoint), "sha256": file_sha256(embedder.checkpoint),
        "stage": embedder.stage, "embed_layer": embedder.embed_layer, "dim": dim,
        "preprocess": spec.to_dict(), "l2_normalised": True,
    }  # fmt: skip


def embed(cfg: DictConfig, overrides: list[str] | None = None) -> dict:
    """Write the gallery described by ``cfg`` (conf/embed.yaml); returns gallery.json."""
    from fastap_lab.embedders import checkpoint_embedder
    from fastap_lab.evaluation_task import data_settings

    values = check_values(cfg)
    checkpoint = resolve_checkpoint_path(cfg.ckpt_path, "ckpt_path")
    embedder = checkpoint_embedder(checkpoint, pick_device(str(values["device"])), values["layer"])
    settings = data_settings(cfg, embedder.run_config, overrides)
    settings.data["require_labels"] = False  # a gallery may be unlabelled
    spec = spec_of_run(embedder.run_config, settings.data)
    run_dir = (
        checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    )
    out = new_output_dir(cfg.get("out"), run_dir / "gallery", "gallery")
    log.info("embedding %s with %s -> %s", settings.source(), checkpoint, out)
    embedded = embed_source(
        embedder, settings.data, batch_size=values["batch_size"], chunk=values["chunk_frames"],
        thumb_size=values["thumb_size"], progress=bool(values["progress"]),
    )  # fmt: skip
    count, dim = embedded.embeddings.shape
    record = {
        "count": count, "dim": dim, "dtype": "float32",
        "model": model_identity(embedder, spec, dim), "data": settings.record(),
        "labels": embedded.table.labels is not None,
        "thumbs": None if embedded.thumbs is None else {"size": int(embedded.thumbs.shape[-1])},
        "embed_seconds": embedded.seconds, "frames_per_second": count / max(embedded.seconds, 1e-9),
        "notes": embedded.notes, "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "fastap_lab_version": __version__,
    }  # fmt: skip
    with io.atomic_folder(out) as tmp:
        write_gallery(tmp, embedded.embeddings, embedded.table, embedded.thumbs, json_safe(record))
        if values["faiss"]:
            from fastap_lab.retrieval.gallery import gallery_index, read_gallery

            gallery_index(read_gallery(tmp))
    for note in embedded.notes:
        log.warning("note: %s", note)
    log.info("gallery of %d frames x %d dims (%.1f frames/s): %s", count, dim,
             record["frames_per_second"], out)  # fmt: skip
    return record


@hydra.main(version_base="1.3", config_path="../conf", config_name="embed")
def main(cfg: DictConfig) -> dict:
    """Command-line entry point: :func:`embed` on the composed Hydra config (conf/embed.yaml)."""
    return run_task(embed, cfg, list(HydraConfig.get().overrides.task))


if __name__ == "__main__":
    main()
