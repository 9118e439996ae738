"""``python -m fastap_lab.audit data=… [augment=PRESET] [ckpt_path=RUN] [out=DIR]``.

Augmentation audit (:mod:`fastap_lab.analysis.augment_audit`): for each op of the augmentation
preset, how far it moves a frame's embedding compared with one breathing cycle (end-exhale to
end-inspiration), and whether it is safe for this sequence. The respiratory phase is labels.csv's
``displacement`` column when the data has one, else the image surrogate
(:mod:`fastap_lab.respiration`). Writes audit.csv, audit.json and audit.md (atomically) into
``out`` (``out-2``, … when it exists) or Hydra's new run folder ``outputs/audit/<time>/``.
The run itself: :func:`fastap_lab.analysis.audit_run.run_audit`.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from fastap_lab.analysis.audit_run import AuditSettings, run_audit
from fastap_lab.cli import log_lines, output_dir, run_task
from fastap_lab.data.sources import load_source_config
from fastap_lab.embedders import checkpoint_embedder
from fastap_lab.evaluation.embed import pick_device
from fastap_lab.respiration.register import register_frameset

log = logging.getLogger(__name__)


def audit(cfg: DictConfig) -> dict:
    """Run the audit described by ``cfg`` (conf/audit.yaml); returns audit.json's record."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    frames = load_source_config(data)
    if data.get("register"):
        frames = register_frameset(frames)
    device = pick_device(cfg.audit.device)
    embed = name = None
    if cfg.get("ckpt_path"):
        embedder = checkpoint_embedder(cfg.ckpt_path, device)
        embed, name = embedder.embed, f"checkpoint {embedder.checkpoint}"
    preset = {k: v for k, v in OmegaConf.to_container(cfg.augment).items() if k != "_target_"}
    spec = cfg.audit
    settings = AuditSettings(int(spec.max_frames), float(spec.extreme_fraction),
                             int(spec.repeats), int(spec.seed))  # fmt: skip
    augment_name = cfg.augment.get("_name_") or "augment"
    record, lines = run_audit(frames, preset, augment_name, embed, name, settings, device,
                              lambda: output_dir(cfg))  # fmt: skip
    log_lines(log, lines)
    return record


@hydra.main(version_base="1.3", config_path="../conf", config_name="audit")
def main(cfg: DictConfig) -> dict:
    """Entry point (Hydra): run :func:`audit`, user errors as one ``error:`` line."""
    return run_task(audit, cfg)


if __name__ == "__main__":
    main()
