"""Assemble the report of a run and write it (and its plot) into the run folder, atomically."""

from __future__ import annotations

from pathlib import Path

from fastap_lab import io
from fastap_lab.report import comparison, gating, plots, sections
from fastap_lab.report.collect import Run
from fastap_lab.report.i18n import translator

PLOT_NAME = "report_loss.png"


def report_name(lang: str) -> str:
    """``report.md`` (English) or ``report.<lang>.md``: both languages can sit side by side."""
    return "report.md" if lang == "en" else f"report.{lang}.md"


def render(
    run: Run,
    baseline: Run | None,
    lang: str,
    *,
    threshold: float = 0.01,
    top: int = 10,
    plot_name: str | None = PLOT_NAME,
) -> str:
    """The report as Markdown text."""
    context = sections.Context(run, baseline, translator(lang), threshold, top, plot_name)
    parts = [
        sections.header,
        sections.summary,
        sections.training,
        sections.metrics,
        comparison.retrieval,
        comparison.differences,
        gating.gating,
        comparison.notes,
    ]
    lines: list[str] = []
    for part in parts:
        block = part(context)
        if block:
            lines += [*block, "", "---", ""] if part is not comparison.notes else block
    return "\n".join(lines).rstrip("-\n ") + "\n"


def write_report(run: Run, baseline: Run | None, lang: str = "en", **options) -> Path:
    """Write ``report[.lang].md`` and ``report_loss.png`` into the run folder; return the report."""
    stages = [r for r in (run.parent, run) if r is not None]
    plot = plots.loss_figure(run.path / PLOT_NAME, stages)
    text = render(run, baseline, lang, plot_name=PLOT_NAME if plot else None, **options)
    return io.write_text(run.path / report_name(lang), text)
