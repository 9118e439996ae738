"""The notebooks run top to bottom against tiny real runs, and are committed without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.integration.report_runs import tiny_runs

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_both_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == [
        "01_embedding_distribution.ipynb",
        "02_query_review.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def _execute(path: Path, env: dict, monkeypatch) -> nbformat.NotebookNode:
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))  # the kernel inherits the environment
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
    client.execute()  # raises CellExecutionError naming the failing cell
    return notebook


def _images(notebook) -> int:
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    return sum("image/png" in o.get("data", {}) for o in outputs)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir):
    return tiny_runs(tmp_path_factory, cache_dir)


def test_embedding_distribution_notebook(runs, monkeypatch):
    simsiam, fastap = runs
    notebook = _execute(
        NOTEBOOKS[0], {"FASTAP_LAB_RUN_A": simsiam, "FASTAP_LAB_RUN_B": fastap}, monkeypatch
    )
    assert _images(notebook) == 3


def _gate_folder(run: Path, out: Path, cache_dir: Path) -> Path:
    """A gate of the run's frames (frame 3 as the reference) into ``out``."""
    from hydra import compose, initialize_config_dir

    from fastap_lab.gate import gate
    from tests.conftest import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("gate", ["data=phantom_tiny", f"ckpt_path={run}", "reference=3", f"out={out}",
                               f"paths.cache_dir={cache_dir}", "paths.output_dir=."])  # fmt: skip
    gate(cfg)
    return out


@pytest.mark.parametrize("query", ["", "5"], ids=["external_invivo", "internal_frame"])
def test_query_review_notebook(runs, monkeypatch, query, tmp_path, cache_dir):
    env = {"FASTAP_LAB_RUN": runs[1], "FASTAP_LAB_QUERY": query, "FASTAP_LAB_K": 4}
    if query:  # the gate section: a trace when there is a gate folder, a hint when not
        env["FASTAP_LAB_GATE"] = _gate_folder(runs[1], tmp_path / "gate", cache_dir)
    notebook = _execute(NOTEBOOKS[1], env, monkeypatch)
    assert _images(notebook) == (2 if query else 1)
    text = "".join(
        o.get("data", {}).get("text/markdown", "")
        for c in notebook.cells
        for o in c.get("outputs", [])
    )
    expected = "invivo.png" if not query else "frame_"
    assert expected in text and "positives in the top 4" in text
    assert ("precision / recall / F1" in text) if query else ("No gate folder" in text)
