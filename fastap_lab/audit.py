"""``python -m fastap_lab.audit data=… [augment=PRESET] [ckpt_path=RUN] [out=DIR]``.

Augmentation audit (:mod:`fastap_lab.analysis.augment_audit`): for each op of the augmentation
preset, how far it moves a frame's embedding compared with one breathing cycle (end-exhale to
end-inspiration), and whether it is safe for this sequence. The respiratory phase is labels.csv's
``displacement`` column when the data has one, else the image surrogate
(:mod:`fastap_lab.respiration`). Writes audit.csv, audit.json and audit.md (atomically) into
``out`` (``out-2``, … when it exists) or Hydra's new run folder ``outputs/audit/<time>/``.
"""

from __future__ import annotations

import logging

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from fastap_lab import io
from fastap_lab.analysis.augment_audit import SAFE_RATIO, audit_augmentations
from fastap_lab.cli import output_dir, run_task
from fastap_lab.data.sources import load_source_config
from fastap_lab.embedders import checkpoint_embedder
from fastap_lab.errors import ConfigError
from fastap_lab.evaluation.embed import pick_device
from fastap_lab.respiration.pipeline import surrogate_from_frames
from fastap_lab.respiration.register import register_frameset

log = logging.getLogger(__name__)
NUISANCE_SHARE = 0.8  # floor / breathing distance above which the verdicts are optimistic


def respiratory_phase(frames) -> tuple[torch.Tensor, str]:
    """(phase float64 [N], where it comes from): ground truth if the data has it."""
    if "displacement" in frames.extras:
        return frames.extras["displacement"], "labels.csv displacement column"
    surrogate = surrogate_from_frames(frames.images, frames.times, frames.groups)
    return surrogate.values, "image surrogate (python -m fastap_lab.surrogate)"


def centred_pixels(reference: torch.Tensor):
    """An embed function of raw pixels: each frame minus ``reference``'s mean frame.

    uint8 [B, C, H, W] -> the frame minus the sequence's mean frame, flattened. Not the
    evaluation's per-pixel standardised baseline: dividing by a near-zero spread (a constant
    background) would make any op's 1/255 change there dwarf breathing.
    """
    mean = reference.float().mean(dim=0).flatten() / 255.0

    def embed(images: torch.Tensor) -> torch.Tensor:
        return images.float().flatten(1) / 255.0 - mean.to(images.device)

    return embed


def nuisance_warning(rows) -> str | None:
    """A warning when nuisance, not breathing, dominates the embedding; else None.

    Frames at one phase nearly as far apart as exhale from inspiration: nuisance dominates
    the embedding, so the breathing distance is mostly nuisance and every ratio looks smaller.
    """
    if not rows or rows[0].floor_distance < NUISANCE_SHARE * rows[0].breathing_distance:
        return None
    return (
        f"frames at the same phase are {rows[0].floor_distance / rows[0].breathing_distance:.0%}"
        " as far apart as end-exhale from end-inspiration: nuisance dominates this embedding, so"
        " the ratios understate what each op does to the breathing signal (try data.register=true"
        " or ckpt_path=<a trained run>)"
    )


def audited_frames(frames, max_frames: int) -> torch.Tensor:
    """Indices of at most ``max_frames`` frames spread evenly over ``frames`` (>= 8 asked for)."""
    if max_frames < 8:
        raise ConfigError(f"audit.max_frames={max_frames}: must be >= 8")
    count = min(len(frames), max_frames)
    return torch.linspace(0, len(frames) - 1, count).round().long().unique()


def markdown(rows, record: dict) -> str:
    """audit.md: the settings, then one table row per audited op."""
    lines = [
        f"# Augmentation audit: {record['augment']} on {record['data_root']}",
        "",
        f"Embedder: {record['embedder']}; phase: {record['phase_source']}; {record['frames']}"
        f" frames. An op is safe when it moves an embedding by less than {SAFE_RATIO:g} x the"
        " end-exhale to end-inspiration distance.",
        "",
        *([f"**Note:** {record['warning']}.", ""] if record["warning"] else []),
        "| op | setting | op distance | breathing distance | same-phase floor | ratio | safe |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r.op} | {r.setting} | {r.op_distance:.3f} | {r.breathing_distance:.3f} |"
        f" {r.floor_distance:.3f} | {r.ratio:.2f} | {'yes' if r.safe else '**no**'} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def audit(cfg: DictConfig) -> dict:
    """Run the audit described by ``cfg`` (conf/audit.yaml); returns audit.json's record."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    frames = load_source_config(data)
    if data.get("register"):
        frames = register_frameset(frames)
    index = audited_frames(frames, int(cfg.audit.max_frames))
    phase, phase_source = respiratory_phase(frames)
    preset = {k: v for k, v in OmegaConf.to_container(cfg.augment).items() if k != "_target_"}
    device = pick_device(cfg.audit.device)
    if cfg.get("ckpt_path"):
        embedder = checkpoint_embedder(cfg.ckpt_path, device)
        embed, name = embedder.embed, f"checkpoint {embedder.checkpoint}"
    else:
        embed, name = centred_pixels(frames.images), "raw pixels (minus the mean frame)"
    fraction = float(cfg.audit.extreme_fraction)
    if not 0 < fraction <= 0.5:
        raise ConfigError(f"audit.extreme_fraction={fraction}: need 0 < extreme_fraction <= 0.5")
    torch.manual_seed(int(cfg.audit.seed))
    rows = audit_augmentations(
        frames.images[index].to(device), phase[index], embed, preset,
        extreme_fraction=fraction, repeats=int(cfg.audit.repeats),
        seed=int(cfg.audit.seed),
    )  # fmt: skip
    augment_name = cfg.augment.get("_name_") or "augment"
    record = {
        "augment": augment_name, "data_root": str(frames.root), "embedder": name,
        "phase_source": phase_source, "frames": int(index.numel()), "safe_ratio": SAFE_RATIO,
        "ops": [row.as_dict() for row in rows],
        "unsafe": [row.op for row in rows if not row.safe],
        "warning": nuisance_warning(rows),
    }  # fmt: skip
    out = output_dir(cfg)
    header = "op,setting,op_distance,breathing_distance,floor_distance,ratio,safe"
    csv_rows = [f'{r.op},"{r.setting}",{r.op_distance:.6f},{r.breathing_distance:.6f},'
                f"{r.floor_distance:.6f},{r.ratio:.6f},{int(r.safe)}" for r in rows]  # fmt: skip
    io.write_text(out / "audit.csv", "\n".join([header, *csv_rows]) + "\n")
    io.write_json(out / "audit.json", record)
    io.write_text(out / "audit.md", markdown(rows, record))
    for row in rows:
        log.info("%-10s ratio %.2f %s", row.op, row.ratio, "safe" if row.safe else "UNSAFE")
    if record["warning"]:
        log.warning("note: %s", record["warning"])
    log.info(
        "unsafe for this sequence: %s; outputs: %s", ", ".join(record["unsafe"]) or "none", out
    )
    return record


@hydra.main(version_base="1.3", config_path="../conf", config_name="audit")
def main(cfg: DictConfig) -> dict:
    """Entry point (Hydra): run :func:`audit`, user errors as one ``error:`` line."""
    return run_task(audit, cfg)


if __name__ == "__main__":
    main()
