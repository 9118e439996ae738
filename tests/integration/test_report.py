"""``python -m fastap_lab.report``: a tiny SimSiam run and a FastAP run from it (both trained and
evaluated once per module, in-process), reported in English and Japanese, with and without a
baseline; an unevaluated run; bad run folders."""

from __future__ import annotations

import csv
import json
import re
import shutil

import pytest

from fastap_lab.report.__main__ import main as report_main
from fastap_lab.report.collect import newest_inference
from tests.integration.report_runs import tiny_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir):
    """(simsiam run, fastap run from it), shared with test_compare.py."""
    return tiny_runs(tmp_path_factory, cache_dir)


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def metrics_of(run):
    return json.loads((newest_inference(run) / "metrics.json").read_text())["metrics"]


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    """Cells of the Markdown table rows whose first cell is ``first_cell``."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|")]  # fmt: skip
    return [row for row in rows if row[0] == first_cell]


def value(cell: str) -> float:
    return float(cell.strip("*"))


def test_report_with_baseline_has_every_section_and_the_right_numbers(runs, capsys):
    simsiam, fastap = runs
    report_main([str(fastap), "--baseline", str(simsiam)])
    text = (fastap / "report.md").read_text()
    for heading in ("## 1. Run summary", "## 2. Training behaviour", "## 3. Evaluation metrics",
                    "## 4. Retrieval results", "## 5. Differences", "### 2.1 SimSiam pretraining",
                    "### 2.2 FastAP fine-tuning", "Internal query: frame_00000"):  # fmt: skip
        assert heading in text, heading
    assert (fastap / "report_loss.png").read_bytes()[:4] == b"\x89PNG"
    assert str(simsiam) in text  # the parent run (model.pretrained) is named
    this, base = metrics_of(fastap), metrics_of(simsiam)
    for label, name in (
        ("mAP", "mAP"),
        ("Precision@1", "precision@1"),
        ("R-precision", "r_precision"),
    ):
        (row,) = table_rows(text, label)
        assert value(row[1]) == pytest.approx(this[name], abs=5e-5)
        assert value(row[2]) == pytest.approx(base[name], abs=5e-5)
        assert value(row[3]) == pytest.approx(this[name] - base[name], abs=1e-4)


def test_differences_count_the_queries_from_both_per_query_files(runs):
    simsiam, fastap = runs
    report_main([str(fastap), "--baseline", str(simsiam), "--threshold", "0.01"])
    text = (fastap / "report.md").read_text()
    ap = [{r["frame"]: r["ap"] for r in read_csv(newest_inference(run) / "per_query.csv")}
          for run in (simsiam, fastap)]  # fmt: skip
    # a query without relevant frames has no AP (empty cell) and is left out of the comparison
    deltas = [float(ap[1][f]) - float(ap[0][f]) for f in ap[0] if ap[0][f] and ap[1][f]]
    found = re.search(r"(\d+) queries scored by both.*?more than 0\.01 for \*\*(\d+)\*\*, degraded"
                      r" for \*\*(\d+)\*\*", text)  # fmt: skip
    assert found, text
    assert [int(g) for g in found.groups()] == [
        len(deltas), sum(d > 0.01 for d in deltas), sum(d < -0.01 for d in deltas)]  # fmt: skip
    spread = table_rows(text, "effective rank")[0]
    diagnostics = [json.loads((newest_inference(r) / "diagnostics.json").read_text()) for r in runs]
    assert value(spread[1]) == pytest.approx(diagnostics[1]["effective_rank"], abs=5e-5)
    assert value(spread[2]) == pytest.approx(diagnostics[0]["effective_rank"], abs=5e-5)


def test_japanese_report_has_the_same_numbers(runs):
    simsiam, fastap = runs
    report_main([str(fastap), "--baseline", str(simsiam), "--lang", "ja"])
    text = (fastap / "report.ja.md").read_text()
    for heading in ("## 1. 実行サマリー", "## 2. 学習挙動", "## 3. 評価指標", "## 4. リトリーバル結果",
                    "## 5. 差分分析", "SimSiam 事前学習", "FastAP 微調整"):  # fmt: skip
        assert heading in text, heading
    (row,) = table_rows(text, "mAP")
    assert value(row[1]) == pytest.approx(metrics_of(fastap)["mAP"], abs=5e-5)
    assert "Run summary" not in text


def test_report_without_baseline_is_shorter_but_complete(runs):
    simsiam, _ = runs
    report_main([str(simsiam)])
    text = (simsiam / "report.md").read_text()
    assert "### 2.1 SimSiam pretraining" in text and "FastAP fine-tuning" not in text
    assert "No baseline given" in text and "Improved most" not in text
    (row,) = table_rows(text, "mAP")
    assert len(row) == 2 and value(row[1]) == pytest.approx(metrics_of(simsiam)["mAP"], abs=5e-5)
    assert "train/z_std" in text  # the SimSiam collapse monitor


def test_training_facts_match_metrics_csv(runs):
    _, fastap = runs
    report_main([str(fastap)])
    text = (fastap / "report.md").read_text()
    per_epoch = {}  # Lightning writes step rows and epoch rows: the epoch's train/loss is its last
    for row in read_csv(fastap / "metrics.csv"):
        if row["train/loss"]:
            per_epoch[int(row["epoch"])] = float(row["train/loss"])
    losses = [per_epoch[e] for e in sorted(per_epoch)]
    assert len(losses) == 2
    fastap_part = text.split("### 2.2")[1]
    assert (
        f"{len(losses)} epochs: final loss **{losses[-1]:.4f}**, best **{min(losses):.4f}**"
        in fastap_part
    )


def test_unevaluated_run_gets_the_evaluate_hint(runs, tmp_path):
    _, fastap = runs
    copy = tmp_path / "fastap_copy"
    shutil.copytree(fastap, copy, ignore=shutil.ignore_patterns("inference*", "report*"))
    report_main([str(copy), "--lang", "en"])
    text = (copy / "report.md").read_text()
    assert f"python -m fastap_lab.evaluate ckpt_path={copy}" in text
    assert "## 2. Training behaviour" in text and "| mAP |" not in text


def test_evaluate_option_evaluates_first(runs, tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv("FASTAP_LAB_CACHE", str(cache_dir))
    simsiam, _ = runs
    copy = tmp_path / "simsiam_copy"
    shutil.copytree(simsiam, copy, ignore=shutil.ignore_patterns("inference*", "report*"))
    report_main([str(copy), "--evaluate"])
    assert newest_inference(copy) is not None
    (row,) = table_rows((copy / "report.md").read_text(), "mAP")
    assert value(row[1]) == pytest.approx(metrics_of(copy)["mAP"], abs=5e-5)


@pytest.mark.parametrize(
    "make,extra", [("missing", []), ("not_a_run", []), ("not_a_run", ["--html"])]
)
def test_bad_run_folder_is_one_error_line(cli, tmp_path, make, extra):
    target = tmp_path / "nothing_here"
    if make == "not_a_run":
        target.mkdir()
    result = cli("report", str(target), *extra)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: ")
    assert str(target) in result.stderr and "Traceback" not in result.stderr


def test_an_evaluation_folder_can_be_the_baseline(runs):
    """A bare evaluation folder (inference/, or a pixels / untrained baseline's output folder)."""
    simsiam, fastap = runs
    report_main([str(fastap), "--baseline", str(newest_inference(simsiam))])
    (row,) = table_rows((fastap / "report.md").read_text(), "mAP")
    assert value(row[2]) == pytest.approx(metrics_of(simsiam)["mAP"], abs=5e-5)
