"""Assemble the report of a run and write it (and its plot) into the run folder, atomically.

``report[.lang].md`` always, ``report[.lang].html`` on request, both from one document;
:func:`report_run` is the work of ``python -m fastap_lab.report``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fastap_lab import io
from fastap_lab.report import comparison, gating, plots, sections
from fastap_lab.report.collect import Run, evaluated_run, load_run
from fastap_lab.report.document import Document, Rule, render_markdown
from fastap_lab.report.i18n import translator

PLOT_NAME = "report_loss.png"
PARTS = (
    sections.header,
    sections.summary,
    sections.training,
    sections.metrics,
    comparison.retrieval,
    comparison.differences,
    gating.gating,
    comparison.notes,
)


def report_name(lang: str, suffix: str = ".md") -> str:
    """``report.md`` (English) or ``report.<lang>.md``: both languages can sit side by side."""
    return f"report{suffix}" if lang == "en" else f"report.{lang}{suffix}"


def document(
    run: Run,
    baseline: Run | None,
    lang: str,
    *,
    threshold: float = 0.01,
    top: int = 10,
    plot_name: str | None = PLOT_NAME,
) -> Document:
    """The report's blocks, the sections separated by rules."""
    context = sections.Context(run, baseline, translator(lang), threshold, top, plot_name)
    doc = Document(sections.title(context), lang, run.path)
    for part in PARTS:
        blocks = part(context)
        if blocks:
            doc.blocks += [Rule(), *blocks] if doc.blocks else blocks
    return doc


def render(run: Run, baseline: Run | None, lang: str, **options) -> str:
    """The report as Markdown text (options: those of :func:`document`)."""
    return render_markdown(document(run, baseline, lang, **options))


def write_report(
    run: Run, baseline: Run | None, lang: str = "en", *, html: bool = False, **options
) -> Path:
    """Write the report of ``run`` (against ``baseline`` when given) into its folder.

    Write ``report[.lang].md`` and ``report_loss.png`` into the run folder, and with ``html``
    the self-contained ``report[.lang].html``; return the Markdown report.
    """
    stages = [r for r in (run.parent, run) if r is not None]
    plot = plots.loss_figure(run.path / PLOT_NAME, stages)
    doc = document(run, baseline, lang, plot_name=PLOT_NAME if plot else None, **options)
    if html:
        from fastap_lab.report.html import render_html

        io.write_text(run.path / report_name(lang, ".html"), render_html(doc))
    return io.write_text(run.path / report_name(lang), render_markdown(doc))


def report_run(
    run_dir: Path, baseline_dir: Path | None = None, lang: str = "en", *, evaluate: bool = False,
    html: bool = False, **options,
) -> Path:  # fmt: skip
    """Write the report of the run folder ``run_dir`` (evaluating first with ``evaluate``).

    Against ``baseline_dir`` when given (options: those of :func:`document`). Warns on stderr
    about unfinished runs, prints the written paths and returns the Markdown report's.
    """
    load = evaluated_run if evaluate else load_run
    run = load(run_dir)
    baseline = load(baseline_dir) if baseline_dir else None
    path = write_report(run, baseline, lang, html=html, **options)
    for stage in (run.parent, run):
        if stage is not None and stage.unfinished:
            epochs, max_epochs = stage.unfinished
            print(
                f"warning: {stage.path} is unfinished: {epochs} of {max_epochs} epochs (no FINISHED"
                " marker: still training, interrupted or failed); re-run the report when it has"
                " finished",
                file=sys.stderr,
            )
    print(path)
    if html:
        print(run.path / report_name(lang, ".html"))
    return path
