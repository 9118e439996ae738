"""The report's gating section: the newest ``<run>/gate[-N]/gate.json`` (python -m fastap_lab.gate)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastap_lab.report.sections import DASH, Context, f4


def gate_folders(run_dir: Path) -> list[Path]:
    """``gate``, ``gate-2``, … of a run that hold a gate.json, oldest first."""

    def number(folder: Path) -> int:
        match = re.fullmatch(r"gate(?:-(\d+))?", folder.name)
        return int(match.group(1) or 1) if match else 0

    found = [f for f in run_dir.glob("gate*") if number(f) and (f / "gate.json").is_file()]
    return sorted(found, key=number)


def gating(c: Context) -> list[str]:
    """Section lines, or [] when the run has no gate folder."""
    folders = gate_folders(c.run.path)
    if not folders:
        return []
    t, folder = c.t, folders[-1]
    record = json.loads((folder / "gate.json").read_text())
    labels, displacement = record.get("labels") or {}, record.get("displacement") or {}
    rows = [
        (t("gate_reference"), f"{record['reference'].get('name', DASH)} ({record['method']})"),
        (t("gate_threshold"), f"{record['threshold']:.4g} — {record['threshold_choice']}"),
        (t("gate_gated"), f"{record['frames_gated']} / {record['num_frames']} ({record['duty_cycle']:.1%})"),
        (t("gate_f1"), " / ".join(f4(labels.get(k)) for k in ("precision", "recall", "f1"))),
        (t("gate_r"), f4(displacement.get("abs_pearson_r"))),
        (t("gate_error"), " / ".join(f4(displacement.get(k)) for k in ("error_mean_share", "error_p95_share"))),
    ]  # fmt: skip
    lines = [f"## {t('s_gate')}", "", t("gate_intro", folder=folder.name, count=len(folders)), ""]
    lines += [f"| {t('figure')} | {t('this_run')} |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return lines + ["", f"![trace]({folder.name}/trace.png)"]
