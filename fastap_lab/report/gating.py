"""The report's gating section: the newest ``<run>/gate[-N]/`` (python -m fastap_lab.gate)."""

from __future__ import annotations

from fastap_lab.gating.outputs import gate_folders, summary_items
from fastap_lab.report.document import Block, Figure, Heading, Paragraph, Table
from fastap_lab.report.sections import Context


def gating(c: Context) -> list[Block]:
    """Section blocks, or [] when the run has no gate folder."""
    folders = gate_folders(c.run.path)
    if not folders:
        return []
    t, folder = c.t, folders[-1]
    rows = tuple((t(key), value) for key, value in summary_items(folder))
    return [
        Heading(2, t("s_gate")),
        Paragraph(t("gate_intro", folder=folder.name, count=len(folders))),
        Table((t("figure"), t("this_run")), rows),
        Figure(f"{folder.name}/trace.png", "trace"),
    ]
