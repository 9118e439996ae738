"""Training steps/s through Lightning vs a plain PyTorch loop: same model, batches and data.

    python -m fastap_lab.bench training_step --stages simsiam fastap --steps 10 --warmup 2 \
        --rounds 2 [HYDRA_OVERRIDES...]

Each stage is built from its reference experiment (``simsiam100``; ``fastap10`` without a
checkpoint) plus the overrides, once; every side then trains a fresh copy of that module for
``warmup + steps`` optimiser steps on the same DataLoader and times the last ``steps``
(device synchronised). Sides, per round, in alternating order so drift on a shared machine
hits both:

* ``plain``: ``for batch in loader: loss.backward(); opt.step()`` on the module's own parts;
* ``lightning``: ``Trainer.fit`` with no logger, no callbacks but the timer, no progress bar;
* ``lightning+callbacks``: the run's real trainer (``build_trainer``: checkpoints every epoch,
  retrieval evaluation, CSV logger); their per-epoch work falls inside the timed steps.

The ratio is lightning steps/s over plain steps/s of the same round (target >= 0.95).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys

import lightning as L
import torch
from omegaconf import open_dict

from fastap_lab.bench._common import (
    STAGE_OVERRIDES,
    Stopwatch,
    autocast_for,
    compose_config,
    device_of,
    endless,
    plain_loss,
    stage_parser,
    start_benchmark,
)
from fastap_lab.build import build_datamodule, build_module, build_trainer, instantiate

SIDES = ("plain", "lightning", "lightning+callbacks")


class StepTimer(L.Callback):
    """Times optimiser steps ``warmup`` .. the last one (whatever happens between them)."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup, self.watch = warmup, Stopwatch(device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        """Start the stopwatch once the warm-up steps are done."""
        if trainer.global_step == self.warmup and self.watch.begin is None:
            self.watch.start()

    def on_train_end(self, trainer, pl_module) -> None:
        """Stop the stopwatch."""
        self.watch.stop()


def optimizer_of(module) -> torch.optim.Optimizer:
    """The optimizer a module's ``configure_optimizers`` returns."""
    configured = module.configure_optimizers()
    return configured["optimizer"] if isinstance(configured, dict) else configured


def run_plain(module, datamodule, cfg, warmup: int, steps: int) -> float:
    """Seconds for ``steps`` plain-PyTorch optimiser steps after ``warmup`` ones."""
    device = device_of(cfg)
    module = module.to(device).train()
    optimizer = optimizer_of(module)
    batches, watch = endless(datamodule.train_dataloader()), Stopwatch(device)
    for step in range(warmup + steps):
        if step == warmup:
            watch.start()
        with autocast_for(cfg, device):
            loss = plain_loss(module, next(batches), device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return watch.stop()


def run_lightning(module, datamodule, cfg, warmup: int, steps: int, callbacks: bool) -> float:
    """Seconds for ``steps`` Lightning optimiser steps after ``warmup`` ones."""
    timer = StepTimer(warmup, device_of(cfg))
    limits = dict(
        max_steps=warmup + steps, max_epochs=-1, num_sanity_val_steps=0,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    if callbacks:  # the run's own trainer (callbacks + logger), stopped after the steps
        trainer_cfg = copy.deepcopy(cfg)
        with open_dict(trainer_cfg):
            trainer_cfg.trainer.update(limits)
        trainer = build_trainer(trainer_cfg, callbacks=[timer])
    else:
        trainer = instantiate(
            cfg.trainer, **limits, callbacks=[timer], logger=False, enable_checkpointing=False
        )
    trainer.fit(module, datamodule=datamodule)
    return timer.watch.seconds


def run_round(prototype, datamodule, cfg, args, order: tuple[str, ...]) -> dict[str, float]:
    """Steps/s of each side in ``order``, each training a fresh copy of ``prototype``."""
    rates = {}
    for side in order:
        module = copy.deepcopy(prototype)
        if side == "plain":
            seconds = run_plain(module, datamodule, cfg, args.warmup, args.steps)
        else:
            callbacks = side == "lightning+callbacks"
            seconds = run_lightning(module, datamodule, cfg, args.warmup, args.steps, callbacks)
        rates[side] = args.steps / seconds
    return rates


def bench_stage(stage: str, args: argparse.Namespace) -> list[dict[str, float]]:
    """One row of steps/s per round for ``stage``; sides alternate order between rounds."""
    cfg = compose_config([*STAGE_OVERRIDES[stage], *args.overrides])
    L.seed_everything(cfg.seed, verbose=False)
    datamodule, prototype = build_datamodule(cfg), build_module(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    rows = []
    for round_index in range(args.rounds):
        order = SIDES if round_index % 2 == 0 else SIDES[::-1]
        rows.append(run_round(prototype, datamodule, cfg, args, order))
    return rows


def format_rows(stage: str, rows: list[dict[str, float]]) -> list[str]:
    """Printed rows per round: steps per second of each side and Lightning's ratios to plain."""
    lines = []
    for i, rates in enumerate(rows, 1):
        ratio = rates["lightning"] / rates["plain"]
        with_callbacks = rates["lightning+callbacks"] / rates["plain"]
        lines.append(
            f"{stage:>8} {i:>5} {rates['plain']:>9.3f} {rates['lightning']:>11.3f}"
            f" {rates['lightning+callbacks']:>12.3f} {ratio:>8.3f} {with_callbacks:>11.3f}"
        )
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The benchmark's command-line options."""
    parser = stage_parser("training_step")
    parser.add_argument("--steps", type=int, default=10, help="timed optimiser steps per side")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run the training-step benchmark; returns the exit code."""
    args = parse_args(argv)
    start_benchmark(args)
    print(
        f"steps={args.steps} warmup={args.warmup} rounds={args.rounds} overrides={args.overrides}"
    )
    print(
        f"{'stage':>8} {'round':>5} {'plain/s':>9} {'lightning/s':>11} {'+callbacks/s':>12} {'ratio':>8} {'ratio+cb':>11}"
    )
    ratios = []
    for stage in args.stages:
        rows = bench_stage(stage, args)
        print("\n".join(format_rows(stage, rows)), flush=True)
        ratios.append((stage, statistics.median(r["lightning"] / r["plain"] for r in rows)))
    for stage, ratio in ratios:
        print(f"{stage}: median lightning/plain = {ratio:.3f} (target >= 0.95)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
