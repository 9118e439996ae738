"""Notebook helpers (fastap_lab.analysis) on two tiny real runs, against brute force / sklearn."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch

from fastap_lab.analysis import (
    hits_rows,
    load_embeddings,
    plot_dimension_std,
    plot_projection,
    plot_query_review,
    plot_similarity_histograms,
    review_query,
    spread_rows,
)
from fastap_lab.errors import DataError
from tests.integration.report_runs import tiny_runs

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, cache_dir):
    simsiam, fastap = tiny_runs(tmp_path_factory, cache_dir)
    return load_embeddings(simsiam, "simsiam"), load_embeddings(fastap, "fastap")


def test_loaded_run_matches_its_files(loaded):
    run = loaded[0]
    stored = np.load(run.evaluation.path / "embeddings.npy")
    assert run.embeddings.shape == stored.shape and np.allclose(run.embeddings.numpy(), stored)
    assert 0 < int(run.evaluated.sum()) < len(run.frame_names)  # held-out split only
    assert run.frames().images.shape[0] == len(run.frame_names)


def test_spread_rows_report_the_evaluated_frames(loaded):
    rows = spread_rows(list(loaded))
    assert [r["run"] for r in rows] == ["simsiam", "fastap"]
    for row, run in zip(rows, loaded, strict=True):
        held_out = run.embeddings[run.evaluated].double()
        cosines = held_out @ held_out.T
        upper = cosines[torch.triu_indices(len(held_out), len(held_out), 1).unbind()]
        assert row["frames"] == len(held_out)
        assert math.isclose(row["mean cos"], float(upper.mean()), rel_tol=1e-9)
        assert row["mAP"] == run.metrics["mAP"]


def _brute_force_top(run, query: int, k: int) -> list[int]:
    scores = run.embeddings @ run.embeddings[query]
    near = (run.times - run.times[query]).abs() <= run.exclusion_window
    allowed = run.evaluated & ~(near & (run.videos == run.videos[query]))
    allowed[query] = False
    candidates = allowed.nonzero().flatten()
    return candidates[scores[candidates].argsort(descending=True, stable=True)][:k].tolist()


def test_internal_query_review_equals_brute_force(loaded):
    run = loaded[1]
    query = int(run.evaluated.nonzero()[0])
    review = review_query(run, query, k=5, context=1)
    assert [h.index for h in review.hits] == _brute_force_top(run, query, 5)
    for hit in review.hits:
        assert hit.index in hit.context and len(hit.context) <= 3
        assert torch.all(run.times[hit.context].diff() > 0)  # neighbours in time order
        assert math.isclose(
            hit.context_scores[hit.context.index(hit.index)], hit.score, abs_tol=1e-5
        )
    rows = hits_rows(run, review)
    assert [r["relevant"] for r in rows] == [
        int(run.labels[h.index]) == int(run.labels[query]) for h in review.hits
    ]


def test_external_query_takes_its_label_from_queries_csv(loaded):
    run = loaded[1]
    path = run.frames().root / "queries" / "invivo_exhale.png"
    review = review_query(run, path, k=4, gallery="all")
    assert review.label == 0 and review.frame_index is None and len(review.hits) == 4
    scores = [h.score for h in review.hits]
    assert scores == sorted(scores, reverse=True)


def test_bad_review_input_is_named(loaded, tmp_path):
    run = loaded[0]
    with pytest.raises(DataError, match="query frame 100000"):
        review_query(run, 100000)
    with pytest.raises(DataError, match="gallery='train'"):
        review_query(run, 0, gallery="train")
    with pytest.raises(DataError, match="does not exist"):
        review_query(run, tmp_path / "missing.png")
    with pytest.raises(DataError, match="python -m fastap_lab.evaluate"):
        load_embeddings(run.run.path / "checkpoints")


def test_figures_draw_every_run(loaded):
    runs = list(loaded)
    assert len(plot_dimension_std(runs).axes[0].lines) == 3  # two runs + the isotropic line
    assert len(plot_similarity_histograms(runs).axes) == 2
    assert len(plot_projection(runs).axes) == 2 * 2 + 4  # scatter axes + colour bars
    review = review_query(runs[0], 0, k=3, context=1)
    figure = plot_query_review(runs[0], review, context_rows=2)
    assert sum(bool(axis.images) for axis in figure.axes) == 1 + 3 + sum(
        len(h.context) for h in review.hits[:2]
    )


def test_frames_of_a_video_run_come_from_the_video(loaded, tmp_path):
    # A video run's data_root is the video's folder; the frames must be decoded from the video.
    from dataclasses import replace

    from fastap_lab.data.video import load_video
    from tests.frame_inputs import write_video

    write_video(tmp_path / "clip.mp4", count=6)
    template = loaded[0]
    run = replace(
        template.run, config={"data": {"video": str(tmp_path / "clip.mp4"), "image_size": 32}}
    )
    video_run = replace(template, run=run, labels=None, _frames=None)
    expected = load_video(tmp_path / "clip.mp4", None, image_size=32, require_labels=False)
    assert torch.equal(video_run.frames().images, expected.images)
