"""Generated experiment reports.

``python -m fastap_lab.report RUN_DIR [--baseline OTHER_RUN] [--lang en|ja] [--evaluate] [--html]``

Reads a run folder (config.yaml, metrics.csv, the newest inference[-N]/, the SimSiam parent of
a FastAP run) and writes ``report.md`` (``report.ja.md`` in Japanese) + ``report_loss.png``;
with ``--html`` also ``report.html`` (``report.ja.html``), one self-contained page with the same
facts (:mod:`fastap_lab.report.html`).
"""

from fastap_lab.report.collect import Run, load_run
from fastap_lab.report.render import render, write_report

__all__ = ["Run", "load_run", "render", "write_report"]
