"""``python -m fastap_lab.gate [ckpt_path=RUN] reference=FRAME|IMAGE [data=…] [gate.*=…]``.

Respiratory gating: score every frame of a sequence against a breath-hold reference (a frame
index of the sequence, or an image), smooth, threshold, and write into ``<run>/gate/`` (with a
checkpoint; ``gate-2``, … never overwritten), ``out`` or ``outputs/gate/<time>/``, atomically:
trace.csv (``frame,time,score,smoothed,gated`` + ``label``, ``displacement`` when the data has
them), gated_frames.csv, gate.json (reference, method, threshold and how it was chosen,
agreement with labels / displacement) and trace.png. Methods and options: conf/gate.yaml. The
work: :func:`fastap_lab.gating.run.run_gate`.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from fastap_lab.cli import log_lines, output_dir, run_task
from fastap_lab.gating.run import run_gate, summary_lines
from fastap_lab.respiratory_config import gate_request

log = logging.getLogger(__name__)


def gate(cfg: DictConfig) -> dict:
    """Run the gate described by ``cfg`` (conf/gate.yaml); returns gate.json."""
    request, default_out = gate_request(cfg)
    record, out = run_gate(request, output=lambda: output_dir(cfg, default_out))
    log_lines(log, summary_lines(record, out))
    return record


@hydra.main(version_base="1.3", config_path="../conf", config_name="gate")
def main(cfg: DictConfig) -> dict:
    """Entry point (Hydra): run :func:`gate`, user errors as one ``error:`` line."""
    return run_task(gate, cfg)


if __name__ == "__main__":
    main()
