"""The report's gating section: the newest ``<run>/gate[-N]/`` (python -m fastap_lab.gate)."""

from __future__ import annotations

from fastap_lab.gating.outputs import gate_folders, summary_items
from fastap_lab.report.sections import Context


def gating(c: Context) -> list[str]:
    """Section lines, or [] when the run has no gate folder."""
    folders = gate_folders(c.run.path)
    if not folders:
        return []
    t, folder = c.t, folders[-1]
    lines = [f"## {t('s_gate')}", "", t("gate_intro", folder=folder.name, count=len(folders)), ""]
    lines += [f"| {t('figure')} | {t('this_run')} |", "| --- | --- |"]
    lines += [f"| {t(key)} | {value} |" for key, value in summary_items(folder)]
    return lines + ["", f"![trace]({folder.name}/trace.png)"]
