"""``python -m fastap_lab.embed ckpt_path=RUN [data=…] [out=DIR] [embed.*=…]``.

Embed every frame of a source once into a gallery folder (layout:
:mod:`fastap_lab.retrieval.gallery`) that ``python -m fastap_lab.search`` queries many times.
Written atomically (a temporary folder renamed into place) into ``out`` (which must not exist)
or ``<run>/gallery`` (``gallery-2``, … when taken). Options: conf/embed.yaml. The embedding
itself: :func:`fastap_lab.evaluation.gallery_embed.embed_gallery`.
"""

from __future__ import annotations

import logging

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fastap_lab.checkpoints import resolve_checkpoint_path
from fastap_lab.cli import log_lines, run_task
from fastap_lab.data.preprocess import spec_of_run
from fastap_lab.errors import ConfigError
from fastap_lab.evaluation.embed import pick_device
from fastap_lab.evaluation.gallery_embed import GallerySettings, embed_gallery
from fastap_lab.evaluation.report import new_output_dir
from fastap_lab.runs import run_of_checkpoint

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
    run_dir = run_of_checkpoint(checkpoint)
    out = new_output_dir(cfg.get("out"), run_dir / "gallery", "gallery")
    log.info("embedding %s with %s -> %s", settings.source(), checkpoint, out)
    how = GallerySettings(values["batch_size"], values["chunk_frames"], values["thumb_size"],
                          bool(values["progress"]), bool(values["faiss"]))  # fmt: skip
    record, lines = embed_gallery(embedder, settings.data, settings.record(), spec, out, how)
    log_lines(log, lines)
    return record


@hydra.main(version_base="1.3", config_path="../conf", config_name="embed")
def main(cfg: DictConfig) -> dict:
    """Command-line entry point: :func:`embed` on the composed Hydra config (conf/embed.yaml)."""
    return run_task(embed, cfg, list(HydraConfig.get().overrides.task))


if __name__ == "__main__":
    main()
