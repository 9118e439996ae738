"""``python -m fastap_lab.compare RUN_A RUN_B``: per-query AP differences of two real tiny runs
(shared with test_report.py), output folders never reused, mismatched query sets refused."""

from __future__ import annotations

import csv
import shutil

import pytest

from fastap_lab.compare import main as compare_main
from fastap_lab.report.collect import newest_inference
from tests.integration.report_runs import tiny_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir):
    return tiny_runs(tmp_path_factory, cache_dir)


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def ap_by_frame(run):
    """AP per query frame from per_query.csv; queries without relevant frames have no AP."""
    rows = read_csv(newest_inference(run) / "per_query.csv")
    return {r["frame"]: float(r["ap"]) for r in rows if r["ap"]}


def test_deltas_are_ap_b_minus_ap_a_sorted_best_first(runs, capsys):
    simsiam, fastap = runs
    compare_main([str(simsiam), str(fastap)])
    out = fastap / f"compare_vs_{simsiam.name}"
    rows = read_csv(out / "per_query_diff.csv")
    ap_a, ap_b = ap_by_frame(simsiam), ap_by_frame(fastap)
    assert {r["frame"] for r in rows} == set(ap_a) & set(ap_b) and rows
    for row in rows:
        assert float(row["AP_A"]) == ap_a[row["frame"]] and float(row["AP_B"]) == ap_b[row["frame"]]
        assert float(row["delta"]) == pytest.approx(
            ap_b[row["frame"]] - ap_a[row["frame"]], abs=1e-12
        )
    deltas = [float(r["delta"]) for r in rows]
    assert deltas == sorted(deltas, reverse=True)
    summary = (out / "per_query_diff.md").read_text()
    improved = sum(d > 0.01 for d in deltas)
    assert f"improved **{improved}**" in summary and "Degraded most" in summary


def test_top10_positives_follow_precision_at_10(runs, tmp_path):
    simsiam, fastap = runs
    compare_main([str(simsiam), str(fastap), "--out", str(tmp_path / "cmp")])
    per_query_a = {r["frame"]: r for r in read_csv(newest_inference(simsiam) / "per_query.csv")}
    column = "precision@10" if "precision@10" in next(iter(per_query_a.values())) else None
    for row in read_csv(tmp_path / "cmp" / "per_query_diff.csv"):
        k = int([c for c in row if c.startswith("P@")][0][2:-2])
        precision = float(per_query_a[row["frame"]][column or f"precision@{k}"])
        assert int(row[f"top{k}_positives_A"]) == round(precision * k)


def test_a_second_comparison_gets_a_new_folder(runs, tmp_path):
    simsiam, fastap = runs
    compare_main([str(simsiam), str(fastap), "--out", str(tmp_path / "same")])
    first = (tmp_path / "same" / "per_query_diff.csv").read_text()
    compare_main([str(simsiam), str(fastap), "--out", str(tmp_path / "same")])
    assert (tmp_path / "same-2" / "per_query_diff.csv").read_text() == first
    assert (tmp_path / "same" / "per_query_diff.csv").read_text() == first


def test_different_query_sets_are_refused(runs, tmp_path, capsys):
    simsiam, fastap = runs
    other = tmp_path / "fewer_queries"
    shutil.copytree(simsiam, other)
    per_query = newest_inference(other) / "per_query.csv"
    lines = per_query.read_text().splitlines(keepends=True)
    per_query.write_text("".join(lines[:-3]))  # three query frames fewer
    with pytest.raises(SystemExit) as exit_info:
        compare_main([str(other), str(fastap), "--out", str(tmp_path / "never")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "different query frames" in error
    assert error.strip().count("\n") == 0 and not (tmp_path / "never").exists()


def test_an_unevaluated_run_is_evaluated_first(runs, tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv("FASTAP_LAB_CACHE", str(cache_dir))
    simsiam, fastap = runs
    copy = tmp_path / "fastap_copy"
    shutil.copytree(fastap, copy, ignore=shutil.ignore_patterns("inference*", "compare_vs_*"))
    compare_main([str(simsiam), str(copy)])
    assert (newest_inference(copy) / "per_query.csv").is_file()
    rows = read_csv(copy / f"compare_vs_{simsiam.name}" / "per_query_diff.csv")
    # the same checkpoint evaluated again gives the same AP as the original evaluation
    original = ap_by_frame(fastap)
    assert all(float(r["AP_B"]) == pytest.approx(original[r["frame"]], abs=1e-6) for r in rows)


def test_bad_run_folder_is_one_error_line(runs, tmp_path, capsys):
    simsiam, _ = runs
    with pytest.raises(SystemExit) as exit_info:
        compare_main([str(simsiam), str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and str(tmp_path / "missing") in error
