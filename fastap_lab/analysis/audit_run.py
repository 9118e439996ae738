"""One augmentation audit run: phase, audited frames, rows, and audit.csv / .json / .md.

What ``python -m fastap_lab.audit`` does after reading its config (the measurement itself is
:mod:`fastap_lab.analysis.augment_audit`). Pure: frames, an embed function and a preset in,
files and a record out; no Lightning or Hydra.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from fastap_lab import io
from fastap_lab.analysis.augment_audit import SAFE_RATIO, audit_augmentations
from fastap_lab.errors import ConfigError
from fastap_lab.respiration.pipeline import surrogate_from_frames

NUISANCE_SHARE = 0.8  # floor / breathing distance above which the verdicts are optimistic


@dataclass(frozen=True)
class AuditSettings:
    """The ``audit.*`` values (conf/audit.yaml documents each)."""

    max_frames: int
    extreme_fraction: float
    repeats: int
    seed: int


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


def run_audit(
    frames,
    preset: dict,
    augment_name: str,
    embed: Callable[[torch.Tensor], torch.Tensor] | None,
    embedder_name: str | None,
    settings: AuditSettings,
    device: torch.device,
    out: Callable[[], Path],
) -> tuple[dict, list[tuple[int, str]]]:
    """Audit ``preset`` on ``frames``; write the files into ``out()``; (record, summary lines).

    ``embed`` None: raw pixels minus the mean frame (:func:`centred_pixels`). ``out`` is
    called once the values are checked, so a bad value claims no folder.
    """
    index = audited_frames(frames, settings.max_frames)
    phase, phase_source = respiratory_phase(frames)
    if embed is None:
        embed, embedder_name = centred_pixels(frames.images), "raw pixels (minus the mean frame)"
    fraction = settings.extreme_fraction
    if not 0 < fraction <= 0.5:
        raise ConfigError(f"audit.extreme_fraction={fraction}: need 0 < extreme_fraction <= 0.5")
    torch.manual_seed(settings.seed)
    rows = audit_augmentations(
        frames.images[index].to(device), phase[index], embed, preset,
        extreme_fraction=fraction, repeats=settings.repeats, seed=settings.seed,
    )  # fmt: skip
    record = {
        "augment": augment_name, "data_root": str(frames.root), "embedder": embedder_name,
        "phase_source": phase_source, "frames": int(index.numel()), "safe_ratio": SAFE_RATIO,
        "ops": [row.as_dict() for row in rows],
        "unsafe": [row.op for row in rows if not row.safe],
        "warning": nuisance_warning(rows),
    }  # fmt: skip
    folder = out()
    write_audit(folder, rows, record)
    return record, summary_lines(rows, record, folder)


def write_audit(folder: Path, rows, record: dict) -> None:
    """audit.csv, audit.json and audit.md, each written atomically."""
    header = "op,setting,op_distance,breathing_distance,floor_distance,ratio,safe"
    csv_rows = [f'{r.op},"{r.setting}",{r.op_distance:.6f},{r.breathing_distance:.6f},'
                f"{r.floor_distance:.6f},{r.ratio:.6f},{int(r.safe)}" for r in rows]  # fmt: skip
    io.write_text(folder / "audit.csv", "\n".join([header, *csv_rows]) + "\n")
    io.write_json(folder / "audit.json", record)
    io.write_text(folder / "audit.md", markdown(rows, record))


def summary_lines(rows, record: dict, folder: Path) -> list[tuple[int, str]]:
    """The console summary: one line per op, the warning, the unsafe ops and the folder."""
    lines = [(logging.INFO, f"{row.op:<10} ratio {row.ratio:.2f} "
              f"{'safe' if row.safe else 'UNSAFE'}") for row in rows]  # fmt: skip
    if record["warning"]:
        lines.append((logging.WARNING, f"note: {record['warning']}"))
    unsafe = ", ".join(record["unsafe"]) or "none"
    lines.append((logging.INFO, f"unsafe for this sequence: {unsafe}; outputs: {folder}"))
    return lines
