"""The report command: write a run's report (Markdown, and HTML with ``--html``).

``python -m fastap_lab.report RUN_DIR [--baseline OTHER_RUN] [--lang en|ja] [--evaluate]
[--html]``. The work: :func:`fastap_lab.report.render.report_run`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fastap_lab.cli import run_task
from fastap_lab.report.i18n import LANGUAGES


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m fastap_lab.report``."""
    p = argparse.ArgumentParser(
        prog="python -m fastap_lab.report",
        description="Write RUN_DIR/report.md (report.ja.md with --lang ja) and report_loss.png;"
        " with --html also the self-contained RUN_DIR/report.html (report.ja.html).",
    )
    p.add_argument("run_dir", type=Path, help="a run folder, e.g. outputs/fastap10/<run>")
    p.add_argument("--baseline", type=Path, help="another run folder to compare with")
    p.add_argument("--lang", choices=LANGUAGES, default="en")
    p.add_argument(
        "--evaluate",
        action="store_true",
        help="evaluate the run (and baseline) first when it has no inference/ folder",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.01,
        help="AP change that counts as improved / degraded (default 0.01)",
    )
    p.add_argument(
        "--html",
        action="store_true",
        help="also write report.html: one offline page, figures inline, sortable per-query table",
    )
    p.add_argument("--top", type=int, default=10, help="queries listed per direction (default 10)")
    return p


def make_report(args: argparse.Namespace) -> Path:
    """Write the report of ``args.run_dir`` (:func:`fastap_lab.report.render.report_run`)."""
    from fastap_lab.report.render import report_run  # the renderer: not for --help

    return report_run(args.run_dir, args.baseline, args.lang, evaluate=args.evaluate,
                      html=args.html, threshold=args.threshold, top=args.top)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: parse ``argv`` and make the report."""
    run_task(make_report, parser().parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
