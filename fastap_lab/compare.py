"""``python -m fastap_lab.compare RUN_A RUN_B [--out DIR] [--threshold 0.01]``.

Per-query comparison of two runs on the same query set — the reference report's "which
queries got better or worse". Each run's newest ``inference[-N]/`` is used; a run never
evaluated is evaluated first (``python -m fastap_lab.evaluate ckpt_path=<run>``). Writes
``per_query_diff.csv`` (sorted by AP_B − AP_A, best first) and ``per_query_diff.md`` into
``RUN_B/compare_vs_<RUN_A name>[-N]/`` (never over an earlier comparison).

The work: :func:`fastap_lab.report.query_diff.compare`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fastap_lab.cli import run_task
from fastap_lab.report.query_diff import compare


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``python -m fastap_lab.compare RUN_A RUN_B``."""
    p = argparse.ArgumentParser(
        prog="python -m fastap_lab.compare", description=__doc__.split("\n\n")[1]
    )
    p.add_argument("run_a", type=Path, help="the reference run (e.g. the SimSiam run)")
    p.add_argument("run_b", type=Path, help="the run compared with it (delta = B − A)")
    p.add_argument("--out", type=Path, help="output folder (default RUN_B/compare_vs_<RUN_A>)")
    p.add_argument("--threshold", type=float, default=0.01, help="AP change counted (0.01)")
    args = p.parse_args(argv)
    run_task(compare, args.run_a, args.run_b, args.out, args.threshold)


if __name__ == "__main__":
    main(sys.argv[1:])
