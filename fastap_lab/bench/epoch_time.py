"""End-to-end epoch time of the reference experiments through ``python -m fastap_lab.train``.

    python -m fastap_lab.bench epoch_time --experiments simsiam100 fastap10 --epochs 2 \
        [--reference outputs] [HYDRA_OVERRIDES...]

Runs each experiment for ``--epochs`` epochs (``trainer.max_epochs``) as a user would, in a
scratch folder, with its callbacks and CSV logger (no progress bar), in order: ``fastap10``
starts from the ``simsiam100`` run just made. Reports the wall time, seconds per epoch (the
run's ``train/epoch_time_s``), the start-up overhead (wall minus epochs) and the extrapolation
to the experiment's full epoch count (overhead + epochs x mean of the epochs after the first).
Then, from ``--reference`` (default ``outputs``), the newest finished full runs' own figures.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from fastap_lab.bench._common import compose_config, machine_line, scratch_dir
from fastap_lab.runs import RunFolder, run_folders

RUN_FOLDER_TIME = "%Y-%m-%d_%H-%M-%S-%f"


def epoch_times(run: Path) -> list[float]:
    """``train/epoch_time_s`` of each epoch in ``run/metrics.csv``."""
    epochs = RunFolder(run).epochs(require="train/epoch_time_s")
    return [e["train/epoch_time_s"] for e in epochs]


def newest_run(outputs: Path, experiment: str) -> Path | None:
    """The newest run folder of ``experiment`` under ``outputs`` (one with metrics.csv), or None."""
    runs = [run.path for run in run_folders(outputs / experiment) if run.metrics_csv.is_file()]
    return runs[-1] if runs else None


def run_wall_seconds(run: Path) -> float | None:
    """From the run folder's start time stamp to the last write of its metrics.csv."""
    try:
        started = datetime.datetime.strptime(run.name, RUN_FOLDER_TIME).timestamp()
    except ValueError:
        return None
    return RunFolder(run).metrics_csv.stat().st_mtime - started


def train(experiment: str, epochs: int, workdir: Path, overrides: list[str]) -> tuple[float, Path]:
    """Run the experiment for ``epochs`` epochs in ``workdir``; wall seconds and its run folder."""
    command = [sys.executable, "-m", "fastap_lab.train", f"+experiment={experiment}"]
    command += [f"trainer.max_epochs={epochs}", "trainer.enable_progress_bar=false", *overrides]
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, env=os.environ.copy()
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:])} failed:\n{done.stderr[-2000:]}")
    return wall, newest_run(workdir / "outputs", experiment)


def full_epochs(experiment: str) -> int:
    """The experiment's configured ``trainer.max_epochs``."""
    return int(compose_config([f"+experiment={experiment}"]).trainer.max_epochs)


def measure_row(experiment: str, wall: float, run: Path) -> str:
    """Table row of a measured run: steady epoch time, overhead, the full run extrapolated."""
    times = epoch_times(run)
    steady = statistics.mean(times[1:] if len(times) > 1 else times)
    overhead = wall - sum(times)
    total = full_epochs(experiment)
    estimate = overhead + total * steady
    per_epoch = " ".join(f"{t:.2f}" for t in times)
    return (
        f"{experiment:>12} {len(times):>6} {per_epoch:>16} {steady:>9.2f} {wall:>8.1f}"
        f" {overhead:>8.1f} {total:>6} {estimate / 60:>9.1f}"
    )


def reference_row(experiment: str, outputs: Path) -> str:
    """Table row of the newest real run of ``experiment`` under ``outputs``."""
    run = newest_run(outputs, experiment)
    if run is None:
        return f"{experiment:>12}  no run under {outputs}/{experiment}/"
    times = epoch_times(run)
    wall = run_wall_seconds(run)
    wall_text = f"{wall / 60:.1f} min" if wall is not None else "?"
    return (
        f"{experiment:>12} {len(times):>6} epochs  median {statistics.median(times):.2f} s"
        f"  min {min(times):.2f}  max {max(times):.2f}  sum {sum(times) / 60:.1f} min"
        f"  wall {wall_text}  ({run})"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The benchmark's command-line options."""
    parser = argparse.ArgumentParser(prog="python -m fastap_lab.bench epoch_time")
    parser.add_argument("--experiments", nargs="+", default=["simsiam100", "fastap10"])
    parser.add_argument("--epochs", type=int, default=2, help="epochs run per experiment")
    parser.add_argument("--reference", default="outputs", help="outputs/ of the real runs")
    parser.add_argument(
        "--workdir", default=None, help="folder for the runs (default: a temp dir, removed at exit)"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides given to every run")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run the epoch-time benchmark; returns the exit code."""
    args = parse_args(argv)
    workdir = Path(args.workdir or scratch_dir("fastap_lab_epochs_"))
    print(machine_line())
    print(f"epochs={args.epochs} workdir={workdir} overrides={args.overrides}")
    print(
        f"{'experiment':>12} {'epochs':>6} {'s/epoch':>16} {'steady s':>9} {'wall s':>8}"
        f" {'start s':>8} {'full':>6} {'est. min':>9}"
    )
    for experiment in args.experiments:
        wall, run = train(experiment, args.epochs, workdir, args.overrides)
        print(measure_row(experiment, wall, run), flush=True)
    print(f"finished full runs under {args.reference}/ (their own metrics.csv):")
    for experiment in args.experiments:
        print(reference_row(experiment, Path(args.reference)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
