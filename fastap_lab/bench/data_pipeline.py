"""Data pipeline throughput (decode once, batch, two-view augmentation) vs the training step.

    python -m fastap_lab.bench data_pipeline --stages simsiam fastap --batches 20 --steps 5 \
        --rounds 2 [HYDRA_OVERRIDES...]

Per stage (reference experiment + overrides), on the device training would use:

* ``decode``: ``load_source`` of the configured frames (PNG decode into the uint8 cache), once
  per run of training: frames/s;
* ``batch``: batches from the training DataLoader (indexing the in-memory cache);
* ``augment``: the two augmented views of each batch (batched tensor ops on the device,
  host-to-device copy included);
* ``step``: one plain-PyTorch optimiser step on the same batches, augmentation included
  (what training does per batch).

``headroom`` = pipeline batches/s (batch + augment) / training steps/s; >= 3 means data never
limits training (target).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import lightning as L
import torch

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
from fastap_lab.bench.training_step import optimizer_of
from fastap_lab.build import build_datamodule, build_module
from fastap_lab.data.sources import load_source


def decode_seconds(datamodule) -> tuple[float, int]:
    """Seconds to decode the configured frames into memory, and how many frames."""
    start = time.perf_counter()
    frames = load_source(**datamodule.source)
    return time.perf_counter() - start, len(frames)


def pipeline_seconds(datamodule, augment, device, batches: int) -> tuple[float, float]:
    """Seconds for ``batches`` DataLoader batches, and for their two augmented views."""
    loader, fetch, augmenting = endless(datamodule.train_dataloader()), 0.0, Stopwatch(device)
    augment_total = 0.0
    next(loader)  # the first batch builds the iterator; not part of the steady state
    for _ in range(batches):
        start = time.perf_counter()
        batch = next(loader)
        fetch += time.perf_counter() - start
        augmenting.start()
        with torch.no_grad():
            images = batch["images"].to(device, non_blocking=True)
            augment(images), augment(images)
        augment_total += augmenting.stop()
    return fetch, augment_total


def step_seconds(module, datamodule, cfg, device, steps: int) -> float:
    """Seconds per plain optimiser step (loss + backward + step), after one warm-up step."""
    module = module.to(device).train()
    optimizer, batches = optimizer_of(module), endless(datamodule.train_dataloader())
    watch = Stopwatch(device)
    for step in range(steps + 1):
        if step == 1:
            watch.start()
        with autocast_for(cfg, device):
            loss = plain_loss(module, next(batches), device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return watch.stop() / steps


def bench_stage(stage: str, args: argparse.Namespace) -> list[dict]:
    """Time decoding, augmentation and training steps of one stage; one row per round."""
    cfg = compose_config([*STAGE_OVERRIDES[stage], *args.overrides])
    L.seed_everything(cfg.seed, verbose=False)
    datamodule, module = build_datamodule(cfg), build_module(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    device = device_of(cfg)
    augment = module.augment.to(device)
    rows = []
    for _ in range(args.rounds):
        decode, frames = decode_seconds(datamodule)
        fetch, augmenting = pipeline_seconds(datamodule, augment, device, args.batches)
        step = step_seconds(module, datamodule, cfg, device, args.steps)
        rows.append(
            dict(
                stage=stage, device=device.type, decode_fps=frames / decode,
                batch_size=datamodule.batch_size, fetch_bps=args.batches / fetch,
                augment_bps=args.batches / augmenting, pipeline_bps=args.batches / (fetch + augmenting),
                step_ps=1.0 / step,
            )
        )  # fmt: skip
    return rows


HEADER = (
    f"{'stage':>8} {'device':>6} {'decode fr/s':>11} {'batch':>5} {'fetch b/s':>10}"
    f" {'aug b/s':>8} {'aug views/s':>11} {'pipe b/s':>9} {'step/s':>7} {'headroom':>8}"
)


def format_row(row: dict) -> str:
    """One printed table row of :func:`bench_stage`."""
    views_per_s = row["augment_bps"] * 2 * row["batch_size"]
    headroom = row["pipeline_bps"] / row["step_ps"]
    return (
        f"{row['stage']:>8} {row['device']:>6} {row['decode_fps']:>11.0f} {row['batch_size']:>5}"
        f" {row['fetch_bps']:>10.0f} {row['augment_bps']:>8.1f} {views_per_s:>11.0f}"
        f" {row['pipeline_bps']:>9.1f} {row['step_ps']:>7.2f} {headroom:>7.1f}x"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The benchmark's command-line options."""
    parser = stage_parser("data_pipeline")
    parser.add_argument("--batches", type=int, default=20, help="pipeline batches timed")
    parser.add_argument("--steps", type=int, default=5, help="training steps timed")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run the data-pipeline benchmark; returns the exit code."""
    args = parse_args(argv)
    start_benchmark(args)
    print(
        f"batches={args.batches} steps={args.steps} rounds={args.rounds} overrides={args.overrides}"
    )
    print(HEADER)
    headrooms = []
    for stage in args.stages:
        rows = bench_stage(stage, args)
        print("\n".join(format_row(r) for r in rows), flush=True)
        headrooms.append((stage, statistics.median(r["pipeline_bps"] / r["step_ps"] for r in rows)))
    for stage, headroom in headrooms:
        print(f"{stage}: median pipeline/step = {headroom:.1f}x (target >= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
