"""Shared by the training benchmarks: composed configs, the machine line, plain PyTorch steps.

Not a benchmark itself (the leading underscore keeps it out of ``python -m fastap_lab.bench``).
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import logging
import os
import platform
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import torch
from omegaconf import DictConfig

from fastap_lab import compose

# What each stage benchmark composes: the reference experiments, FastAP without a checkpoint
# (pretrained weights change nothing about speed and need a finished SimSiam run).
STAGE_OVERRIDES = {
    "simsiam": ["+experiment=simsiam100"],
    "fastap": ["+experiment=fastap10", "model.pretrained=null"],
}


def scratch_dir(prefix: str) -> str:
    """A new temporary folder, removed when the process exits.

    Benchmark runs write checkpoints of ~100 MB each, and left behind they fill the disk.
    """
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def compose_config(overrides: list[str], output_dir: str | None = None) -> DictConfig:
    """The training config composed with ``overrides``, writing into a scratch folder.

    ``conf/train.yaml`` composed with ``overrides``; run outputs go to a scratch folder
    (removed at exit) unless ``output_dir`` is given.
    """
    output_dir = output_dir or scratch_dir("fastap_lab_bench_")
    return compose.compose_config("train", [f"paths.output_dir={output_dir}", *overrides])


def quiet_lightning() -> None:
    """Keep Lightning's banners and advisory warnings out of the result tables."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", message=".*(val_dataloader|LeafSpec|litlogger).*")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    """Cores, CPU model, GPU (if any), torch version, threads and UTC date, on one line."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"machine: {os.cpu_count()} cores, {cpu_model()}, {gpu}; torch {torch.__version__},"
        f" {torch.get_num_threads()} threads; {date}"
    )


def device_of(cfg: DictConfig) -> torch.device:
    """The device Lightning would pick for ``cfg.trainer.accelerator``."""
    wants_gpu = cfg.trainer.accelerator in ("auto", "gpu", "cuda")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def autocast_for(cfg: DictConfig, device: torch.device):
    """The autocast context Lightning's ``trainer.precision`` means, for the plain loop."""
    precision = str(cfg.trainer.precision)
    if precision in ("32", "32-true"):
        return torch.autocast(device.type, enabled=False)
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ValueError(f"trainer.precision={precision}: the plain loop supports 32-true, bf16-mixed")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_loss(module, batch: dict, device: torch.device) -> torch.Tensor:
    """The stage's training loss in a plain loop, without Lightning.

    The stage's training loss (``module.compute_loss``, the code ``training_step`` runs) in
    a plain loop: the batch moved by hand, no logging, no Lightning hooks, one process.
    """
    on_device = {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }
    return module.compute_loss(on_device)["loss"]


def endless(loader):
    """Batches of ``loader``, epoch after epoch (a new shuffle each pass)."""
    while True:
        yield from loader


class Stopwatch:
    """Wall seconds between :meth:`start` and :meth:`stop`, synchronising the device first."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.begin, self.seconds = device, None, 0.0

    def start(self) -> None:
        synchronize(self.device)
        self.begin = time.perf_counter()

    def stop(self) -> float:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self.begin
        return self.seconds


def stage_parser(name: str) -> argparse.ArgumentParser:
    """Options shared by the per-stage benchmarks; each adds its own counts."""
    parser = argparse.ArgumentParser(prog=f"python -m fastap_lab.bench {name}")
    parser.add_argument(
        "--stages", nargs="+", choices=sorted(STAGE_OVERRIDES), default=["simsiam", "fastap"]
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data.batch_size=64")
    return parser


def start_benchmark(args: argparse.Namespace) -> None:
    """Apply --threads, silence Lightning and print the machine line above the table."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    quiet_lightning()
    print(machine_line())
