"""The config of the respiratory commands read into plain values (glue: OmegaConf, Hydra).

``python -m fastap_lab.surrogate`` and ``python -m fastap_lab.gate`` read their ``cfg`` here and
only here: ``surrogate.*`` checked, the data config as a plain dict, ``gate.*`` checked, the
checkpoint with its run folder and embedder (the gate's parts import :mod:`fastap_lab.gating`
when called, so the surrogate never loads it). The work itself takes plain values:
:mod:`fastap_lab.respiration.run` (the surrogate), :mod:`fastap_lab.gating.run` (the gate).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from fastap_lab.checkpoints import resolve_checkpoint_path
from fastap_lab.respiration.pipeline import SurrogateSettings, checked_settings
from fastap_lab.runs import run_of_checkpoint

if TYPE_CHECKING:
    from fastap_lab.gating.run import GateRequest


def settings_from(cfg: DictConfig) -> SurrogateSettings:
    """``cfg.surrogate`` as SurrogateSettings; an out-of-range value is one ConfigError line."""
    return checked_settings(OmegaConf.to_container(cfg.surrogate, resolve=True))


def data_config(cfg: DictConfig) -> dict:
    """``cfg.data`` as a plain dict (interpolations resolved)."""
    return OmegaConf.to_container(cfg.data, resolve=True)


def gate_values(cfg: DictConfig) -> dict:
    """``cfg.gate`` checked, with ``method`` resolved (auto -> embedding / surrogate)."""
    from fastap_lab.gating.run import check_gate_values  # the gate's, not the surrogate's

    values = OmegaConf.to_container(cfg.gate, resolve=True)
    return check_gate_values(values, cfg.get("ckpt_path"), cfg.get("reference"))


def checkpoint_run(cfg: DictConfig) -> tuple[Path | None, Path | None]:
    """(checkpoint file, its run folder) or (None, None)."""
    if not cfg.get("ckpt_path"):
        return None, None
    checkpoint = resolve_checkpoint_path(cfg.ckpt_path, "ckpt_path")
    return checkpoint, run_of_checkpoint(checkpoint)


def embedder_for(values: dict, checkpoint: Path | None):
    """The embedder of ``checkpoint`` on the configured device (None without a checkpoint)."""
    from fastap_lab.embedders import checkpoint_embedder
    from fastap_lab.evaluation.embed import pick_device

    if checkpoint is None:
        return None
    return checkpoint_embedder(
        checkpoint, pick_device(str(values["device"])), values["embed_layer"]
    )


def gate_request(cfg: DictConfig) -> tuple[GateRequest, Path | None]:
    """(What the gate runs on, its default output folder: ``<run>/gate`` with a checkpoint)."""
    from fastap_lab.gating.run import GateRequest

    values = gate_values(cfg)
    checkpoint, run_dir = checkpoint_run(cfg)
    embedder = embedder_for(values, checkpoint)
    request = GateRequest(
        values=values, data=data_config(cfg), reference=cfg.get("reference"), fps=cfg.get("fps"),
        surrogate=OmegaConf.to_container(cfg.surrogate, resolve=True), embedder=embedder,
        checkpoint=cfg.get("ckpt_path"),
    )  # fmt: skip
    return request, None if run_dir is None else run_dir / "gate"
