"""Notebook helpers that need no run (fastap_lab.analysis): the 2-D projection against sklearn's
PCA, the newest evaluated run, markdown tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastap_lab.analysis import (
    latest_run,
    markdown_table,
    project_2d,
)
from fastap_lab.errors import DataError


@pytest.mark.parametrize("seed", range(4))
def test_project_2d_equals_sklearn_pca_with_the_documented_signs(seed):
    from sklearn.decomposition import PCA

    x = torch.randn(50, 7, generator=torch.Generator().manual_seed(seed))
    pca = PCA(n_components=2, svd_solver="full").fit(x.double().numpy())
    # The documented convention: each axis' largest loading (in absolute value) is positive.
    axes = pca.components_
    axes = axes * np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])[:, None]
    reference = (x.double().numpy() - pca.mean_) @ axes.T
    assert np.allclose(project_2d(x).numpy(), reference, atol=1e-9)
    # So flipping the data flips the picture instead of leaving the SVD's sign to chance.
    assert np.allclose(project_2d(-x).numpy(), -reference, atol=1e-9)


def test_latest_run_picks_the_newest_evaluated_run(tmp_path):
    for name in ("2026-01-01_00-00-00", "2026-02-01_00-00-00"):
        (tmp_path / "exp" / name / "inference").mkdir(parents=True)
        (tmp_path / "exp" / name / "inference" / "metrics.json").write_text("{}")
    (tmp_path / "exp" / "2026-03-01_00-00-00").mkdir()  # not evaluated
    assert latest_run("exp", tmp_path).name == "2026-02-01_00-00-00"
    with pytest.raises(DataError, match=r"\+experiment=other"):
        latest_run("other", tmp_path)


def test_markdown_table_rounds_floats():
    text = markdown_table([{"a": 1, "b": 0.123456}], digits=2)
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.12 |"]
