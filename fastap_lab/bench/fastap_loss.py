"""Forward+backward time and peak memory of ``fastap_loss`` vs pytorch-metric-learning FastAPLoss.

    python -m fastap_lab.bench fastap_loss --sizes 256 1024 2048 4096 --bins 10 100 \
        --dim 256 --repeats 5 --device cpu --threads 1 2

Each (implementation, N, bins) runs in a fresh subprocess, so peak memory is that process's own:
on CPU the growth of ru_maxrss over the run, on CUDA torch.cuda.max_memory_allocated above the
inputs. Both losses see the same float32 inputs and labels (8 frames per label); ours builds its
positive mask inside the timed step, as pml does. A float64 child reports |Δ loss| and the
largest |Δ grad| between the two as a correctness check.

Each row is one thread count (``--threads``, several allowed) and shows the spread of the
``--repeats`` timed runs: min / median / max ms on each side, and the ratio of the medians
(and of the minima, the least disturbed runs). The load average before the row is printed:
on a shared machine, swings come from the other jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from fastap_lab.losses.fastap import fastap_loss
from fastap_lab.losses.positives import positives_from_labels

FRAMES_PER_LABEL = 8
# pml keeps about this many N×N×(bins+1) tensors alive at its peak (measured with this script:
# 4.2-4.4 on CPU at N=512 and 1024, bins=100), so that is what the skip rule budgets for.
PML_DENSE_TENSORS_AT_PEAK = 4.5


def make_inputs(n: int, dim: int, device: str, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Seeded embeddings [n, dim] (leaf, requires grad) and labels [n] on ``device``."""
    generator = torch.Generator().manual_seed(n)
    embeddings = torch.randn(n, dim, generator=generator, dtype=dtype).to(device)
    labels = (torch.arange(n) // FRAMES_PER_LABEL).to(device)
    return embeddings.requires_grad_(True), labels


def loss_function(implementation: str, bins: int):
    """(embeddings [N, D], labels [N]) -> scalar loss, for ``implementation`` in ours | pml."""
    if implementation == "ours":
        return lambda x, labels: fastap_loss(x, positives_from_labels(labels), bins=bins)
    from pytorch_metric_learning.losses import FastAPLoss

    return FastAPLoss(num_bins=bins)


def synchronize(device: str) -> None:
    """Wait for the CUDA device's queued work (nothing to wait for on the CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def measure(implementation: str, n: int, bins: int, dim: int, repeats: int, device: str) -> dict:
    """Forward + backward times and peak memory of one FastAP implementation.

    Min / median / max forward+backward ms over ``repeats`` after one warm-up, and the
    peak MB of the run.
    """
    embeddings, labels = make_inputs(n, dim, device, torch.float32)
    loss_fn = loss_function(implementation, bins)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    baseline_bytes = _peak_bytes(device)
    times_ms = []
    for attempt in range(repeats + 1):
        embeddings.grad = None
        synchronize(device)
        start = time.perf_counter()
        loss_fn(embeddings, labels).backward()
        synchronize(device)
        if attempt > 0:  # the first pass is a warm-up
            times_ms.append(1e3 * (time.perf_counter() - start))
    peak_mb = (_peak_bytes(device) - baseline_bytes) / 2**20
    return {
        "ms": statistics.median(times_ms),
        "min_ms": min(times_ms),
        "max_ms": max(times_ms),
        "peak_mb": peak_mb,
    }


def _peak_bytes(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def compare_float64(n: int, bins: int, dim: int, device: str) -> dict:
    """|Δ loss| and max |Δ grad| between ours and pml on the same float64 inputs."""
    results = []
    for implementation in ("ours", "pml"):
        embeddings, labels = make_inputs(n, dim, device, torch.float64)
        loss = loss_function(implementation, bins)(embeddings, labels)
        loss.backward()
        results.append((loss.detach(), embeddings.grad))
    (ours_loss, ours_grad), (pml_loss, pml_grad) = results
    return {
        "loss_diff": (ours_loss - pml_loss).abs().item(),
        "grad_diff": (ours_grad - pml_grad).abs().max().item(),
    }


def run_child(args: argparse.Namespace, task: str, n: int, bins: int, threads: int) -> dict:
    """Run one measurement in a fresh interpreter so its peak memory is its own."""
    command = [sys.executable, "-m", "fastap_lab.bench.fastap_loss", "--child", task]
    command += ["--sizes", str(n), "--bins", str(bins), "--dim", str(args.dim)]
    command += ["--repeats", str(args.repeats), "--device", args.device]
    command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def pml_estimate_gb(n: int, bins: int, itemsize: int) -> float:
    """Estimated peak GiB of pytorch-metric-learning's dense FastAP at ``n`` items."""
    return PML_DENSE_TENSORS_AT_PEAK * n * n * (bins + 1) * itemsize / 2**30


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The benchmark's command-line options."""
    parser = argparse.ArgumentParser(prog="python -m fastap_lab.bench fastap_loss")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 2048, 4096])
    parser.add_argument("--bins", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:K")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[0],
        help="torch CPU threads, one row each (0: default)",
    )
    parser.add_argument("--pml-limit-gb", type=float, default=6.0, help="skip pml above this")
    parser.add_argument("--child", choices=["ours", "pml", "check"], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run the FastAP loss benchmark (or one measurement, as a child); returns the exit code."""
    args = parse_args(argv)
    if args.child:
        if args.threads[0] > 0:
            torch.set_num_threads(args.threads[0])
        n, bins = args.sizes[0], args.bins[0]
        if args.child == "check":
            result = compare_float64(n, bins, args.dim, args.device)
        else:
            result = measure(args.child, n, bins, args.dim, args.repeats, args.device)
        print(json.dumps(result))
        return 0
    print(
        f"device={args.device} dim={args.dim} repeats={args.repeats} (after 1 warm-up) "
        f"cores={os.cpu_count()} default threads={torch.get_num_threads()}"
    )
    header = f"{'N':>6} {'bins':>5} {'thr':>3} {'ours ms min/med/max':>21} "
    header += f"{'pml ms min/med/max':>24} {'med':>6} {'min':>6} {'ours MB':>8} {'pml MB':>8} "
    print(header + f"{'load':>5}  float64 |Δloss| / max|Δgrad|")
    for threads in args.threads:
        for n in args.sizes:
            for bins in args.bins:
                print(format_row(args, n, bins, threads or torch.get_num_threads()), flush=True)
    return 0


def _spread(run: dict) -> str:
    return f"{run['min_ms']:.1f}/{run['ms']:.1f}/{run['max_ms']:.1f}"


def format_row(args: argparse.Namespace, n: int, bins: int, threads: int) -> str:
    """One table row: ours against pytorch-metric-learning at ``n`` items, ``bins`` bins."""
    load = os.getloadavg()[0]
    ours = run_child(args, "ours", n, bins, threads)
    if "error" in ours:
        return f"{n:>6} {bins:>5} {threads:>3}  error: {ours['error']}"
    start = f"{n:>6} {bins:>5} {threads:>3} {_spread(ours):>21}"
    needed_gb = pml_estimate_gb(n, bins, itemsize=4)
    if needed_gb > args.pml_limit_gb:
        return f"{start} {'-':>24} {'-':>6} {'-':>6} {ours['peak_mb']:>8.0f} {'-':>8} {load:>5.1f}  skipped: pml would need {needed_gb:.1f} GB"
    pml = run_child(args, "pml", n, bins, threads)
    if "error" in pml:
        return f"{start}  error: {pml['error']}"
    if pml_estimate_gb(n, bins, itemsize=8) <= args.pml_limit_gb:
        check = run_child(args, "check", n, bins, threads)
        check_text = f"{check['loss_diff']:.1e} / {check['grad_diff']:.1e}"
    else:
        check_text = "skipped (float64 pml too big)"
    ratios = f"{pml['ms'] / ours['ms']:>5.1f}x {pml['min_ms'] / ours['min_ms']:>5.1f}x"
    return (
        f"{start} {_spread(pml):>24} {ratios} {ours['peak_mb']:>8.0f} {pml['peak_mb']:>8.0f}"
        f" {load:>5.1f}  {check_text}"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
