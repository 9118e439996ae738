"""Issue 14's probe table, shared by test_probe_data.py and test_probe_readers.py: a ``Probe``
(the folder a row works in, the trained run when it asks, config and logs), the ``Row`` of one
case and ``check_row``, which runs a row in-process through ``run_task`` (the CLIs' own code
path) and checks its exit code (2 = one ``error:`` line, no traceback; 0 = it ran), the words the
user must read, and the folders that must stay byte-identical.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from fastap_lab.cli import run_task
from fastap_lab.evaluation_task import evaluate
from tests.integration.test_bad_input_matrix import tree_digest, write_frames

QUICK_EVAL = ["eval.device=cpu", "eval.table_k=3", "eval.queries.from_data=false"]


@dataclass
class Probe:
    """What a row works with: its folder, the trained run (when it asks), config and logs."""

    tmp: Path
    make_cfg: Callable
    caplog: pytest.LogCaptureFixture
    watched: list[Path]  # folders that must not change once the input is built
    run: Path | None = None
    data: Path | None = None  # the run's frames, moved away from where it was trained
    record: dict | None = None  # metrics.json of the last evaluation
    before: dict | None = None

    def built(self) -> None:
        """The input is in place: from here on the watched folders must not change."""
        self.before = {folder: tree_digest(folder) for folder in self.watched}

    def evaluate(self, *overrides: str) -> str:
        """Evaluate as the CLI would; the console (INFO and up) and metrics.json as text."""
        self.built()
        arguments = [*QUICK_EVAL, f"paths.output_dir={self.tmp / 'out'}", *overrides]
        self.record = evaluate(self.make_cfg(arguments, config_name="evaluate"), arguments)
        return self.caplog.text + json.dumps(self.record)


# --------------------------------------------------------------------------- inputs
def frames_with_labels(probe: Probe, labels: str, count: int = 12) -> Path:
    root = write_frames(probe.tmp / "data", labels=labels, count=count)
    probe.built()
    return root


def rows(*lines: str, header: str = "frame,label") -> str:
    return "\n".join([header, *lines]) + "\n"


@dataclass(frozen=True)
class Row:
    case: str
    act: Callable[[Probe], object]  # makes the input under probe.tmp and runs it
    exit_code: int  # of run_task(act): 0 = went through, 2 = one error line
    words: tuple[str, ...]  # in the error line, or in what a run that went through said
    unchanged: tuple[str, ...] = ("data",)  # folders (under tmp; RUN, DATA: the trained run's)
    needs_run: bool = False


def place(text: str, probe: Probe) -> str:
    return text.replace("RUN", str(probe.run)).replace("DATA", str(probe.data))


def check_row(row: Row, request, tmp_path: Path, make_cfg, caplog, capsys) -> None:
    """Build the row's input, run it through ``run_task``, check exit code, words, folders."""
    caplog.set_level(logging.INFO)
    probe = Probe(tmp_path, make_cfg, caplog, watched=[])
    if row.needs_run:
        probe.run, probe.data = request.getfixturevalue("trained")
    probe.watched = [
        Path(place(f, probe)) if f.isupper() or "/" in f else tmp_path / f for f in row.unchanged
    ]
    if row.exit_code == 0:
        said = str(run_task(row.act, probe))
    else:
        with pytest.raises(SystemExit) as exited:
            run_task(row.act, probe)
        assert exited.value.code == row.exit_code
        err = capsys.readouterr().err
        assert "Traceback" not in err
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, err
        said = lines[0]
    for word in row.words:
        assert place(word, probe) in said, said[-3000:]
    assert probe.before is not None, "the row never said when its input was complete"
    for folder, digest in probe.before.items():
        assert tree_digest(folder) == digest, folder
