"""ranking_metrics / summarize against scikit-learn and a brute-force per-query loop."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from fastap_lab.errors import ConfigError
from fastap_lab.retrieval.metrics import ranking_metrics, summarize

KS = (1, 3, 10, 40)


def random_problem(seed, num_queries=40, num_gallery=60, ties=False, masked=False, dtype=None):
    """Scores in [-1, 1] (optionally quantised to 9 levels: heavy ties), ~15% relevant.

    float32 and float64 take different sort paths in ranking_metrics: tests run both.
    """
    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(num_queries, num_gallery, generator=generator, dtype=torch.float64) * 2 - 1
    if ties:
        scores = torch.round(scores * 4) / 4
    relevant = torch.rand(num_queries, num_gallery, generator=generator) < 0.15
    valid = torch.rand(num_queries, num_gallery, generator=generator) < 0.7 if masked else None
    return scores.to(dtype or torch.float64), relevant, valid


def brute_force(scores, relevant, valid, ks):
    """Straightforward per-query loop; ties broken by lower gallery index (stable)."""
    rows = []
    for q in range(scores.shape[0]):
        keep = [g for g in range(scores.shape[1]) if valid is None or valid[q, g]]
        ranked = sorted(keep, key=lambda g, q=q: (-scores[q, g].item(), g))
        hits = [bool(relevant[q, g]) for g in ranked]
        num_rel = sum(hits)
        row = {"num_relevant": num_rel}
        for k in ks:
            row[f"precision@{k}"] = sum(hits[:k]) / k if num_rel else math.nan
            row[f"recall@{k}"] = sum(hits[:k]) / num_rel if num_rel else math.nan
        row["r_precision"] = sum(hits[:num_rel]) / num_rel if num_rel else math.nan
        precisions = [sum(hits[: i + 1]) / (i + 1) for i in range(num_rel) if hits[i]]
        row["map@r"] = sum(precisions) / num_rel if num_rel else math.nan
        rows.append(row)
    return {name: np.array([row[name] for row in rows], dtype=float) for name in rows[0]}


def sklearn_ap(scores, relevant, valid):
    aps = []
    for q in range(scores.shape[0]):
        keep = np.ones(scores.shape[1], bool) if valid is None else valid[q].numpy()
        labels = relevant[q].numpy()[keep]
        aps.append(
            average_precision_score(labels, scores[q].numpy()[keep]) if labels.any() else math.nan
        )
    return np.array(aps)


DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])


@DTYPES
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_ap_equals_sklearn(ties, masked, dtype):
    scores, relevant, valid = random_problem(
        1 + ties + 2 * masked, ties=ties, masked=masked, dtype=dtype
    )
    assert (scores < 0).any()
    ours = ranking_metrics(scores, relevant, KS, valid)["ap"].numpy()
    np.testing.assert_allclose(ours, sklearn_ap(scores, relevant, valid), rtol=0, atol=1e-12)


def test_tie_group_ap_differs_from_index_tie_break():
    # The relevant item ties with an irrelevant one: an index tie-break would rank it first
    # (AP 1); sklearn evaluates precision after the whole tie group (AP 1/2).
    scores = torch.tensor([[0.5, 0.5, -0.3]], dtype=torch.float64)
    relevant = torch.tensor([[True, False, False]])
    expected = average_precision_score([1, 0, 0], [0.5, 0.5, -0.3])
    assert expected < 1
    assert ranking_metrics(scores, relevant)["ap"].item() == pytest.approx(expected)
    assert ranking_metrics(scores, relevant, ks=(1,))["precision@1"].item() == 1


@DTYPES
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_rank_metrics_equal_brute_force(ties, masked, dtype):
    scores, relevant, valid = random_problem(
        7 + ties + 2 * masked, ties=ties, masked=masked, dtype=dtype
    )
    ours = ranking_metrics(scores, relevant, KS, valid)
    expected = brute_force(scores, relevant, valid, KS)
    for name, values in expected.items():
        np.testing.assert_allclose(ours[name].numpy(), values, rtol=0, atol=1e-12, err_msg=name)


def test_queries_without_relevant_are_nan_and_counted():
    scores, relevant, valid = random_problem(seed=3, masked=True)
    relevant[:5] = False
    relevant[5, :] = ~valid[5]  # relevant items exist but are all excluded
    valid[6, :] = False  # empty gallery
    per_query = ranking_metrics(scores, relevant, KS, valid)
    without = per_query["num_relevant"] == 0
    assert without[:7].all() and int(without.sum()) >= 7
    for name, values in per_query.items():
        if name != "num_relevant":
            assert torch.isnan(values[without]).all() and not torch.isnan(values[~without]).any()
    summary = summarize(per_query)
    assert summary["num_queries"] == 40
    assert summary["num_queries_without_relevant"] == int(without.sum())
    kept_aps = sklearn_ap(scores, relevant, valid)
    assert summary["mAP"] == pytest.approx(np.nanmean(kept_aps), abs=1e-12)
    assert summary["precision@3"] == pytest.approx(per_query["precision@3"][~without].mean().item())


def test_k_larger_than_gallery_takes_all_valid_and_divides_by_k():
    scores, relevant, valid = random_problem(seed=5, num_gallery=12, masked=True)
    ours = ranking_metrics(scores, relevant, (50,), valid)
    expected = brute_force(scores, relevant, valid, (50,))
    np.testing.assert_allclose(ours["precision@50"].numpy(), expected["precision@50"], atol=1e-12)
    has_relevant = expected["num_relevant"] > 0
    assert (ours["recall@50"].numpy()[has_relevant] == 1).all()


def test_float32_scores_and_blocks_match_float64(monkeypatch):
    scores, relevant, valid = random_problem(seed=9, masked=True)
    reference = ranking_metrics(scores.float().double(), relevant, KS, valid)
    monkeypatch.setattr("fastap_lab.retrieval.metrics._BLOCK_ENTRIES", 7 * scores.shape[1])
    blocked = ranking_metrics(scores.float(), relevant, KS, valid)
    for name, values in reference.items():
        assert blocked[name].dtype == torch.float64
        torch.testing.assert_close(blocked[name], values, equal_nan=True, rtol=0, atol=1e-12)


def test_invalid_ks_rejected():
    scores, relevant, _ = random_problem(seed=0)
    with pytest.raises(ConfigError, match="ks"):
        ranking_metrics(scores, relevant, ks=(0, 5))


@DTYPES
def test_signed_zeros_and_infinities_rank_like_their_values(dtype):
    # -0.0 == 0.0 (one tie group for sklearn), +inf first, -inf last; negative scores of
    # different magnitude keep their order (float32 goes through integer sort keys).
    scores = torch.tensor([[0.0, -0.0, float("inf"), -0.5, -0.25, float("-inf"), 0.0, 1e-30]])
    relevant = torch.tensor([[False, True, False, True, False, True, True, False]])
    ours = ranking_metrics(scores.to(dtype), relevant, ks=(1, 2, 3, 4, 5))
    expected = brute_force(scores.double(), relevant, None, (1, 2, 3, 4, 5))
    for name, values in expected.items():
        np.testing.assert_allclose(ours[name].numpy(), values, atol=1e-12, err_msg=name)
    sklearn = average_precision_score(
        relevant[0].numpy(), scores[0].double().clamp(-1e9, 1e9).numpy()
    )
    assert ours["ap"].item() == pytest.approx(sklearn, abs=1e-12)


@DTYPES
def test_nan_scores_and_valid_relevant_minus_inf_rejected(dtype):
    scores, relevant, valid = random_problem(seed=0, masked=True, dtype=dtype)
    with pytest.raises(ValueError, match="NaN"):
        ranking_metrics(scores.masked_fill(scores > 0.99, float("nan")), relevant)
    position = (relevant & valid).nonzero()[0]
    scores[position[0], position[1]] = float("-inf")
    with pytest.raises(ValueError, match="-inf"):
        ranking_metrics(scores, relevant, valid=valid)


@pytest.mark.parametrize(
    ("scores", "relevant", "valid", "needle"),
    [
        (torch.zeros(3, 4, dtype=torch.long), torch.ones(3, 4, dtype=torch.bool), None, "float"),
        (torch.zeros(4), torch.ones(4, dtype=torch.bool), None, "float"),
        (torch.zeros(3, 4), torch.ones(3, 5, dtype=torch.bool), None, "relevant"),
        (torch.zeros(3, 4), torch.ones(3, 4, dtype=torch.bool), torch.ones(4, 3).bool(), "valid"),
    ],
    ids=["integer_scores", "one_dimensional", "relevant_shape", "valid_shape"],
)
def test_malformed_inputs_rejected_naming_the_argument(scores, relevant, valid, needle):
    with pytest.raises(ValueError, match=needle):
        ranking_metrics(scores, relevant, valid=valid)


@pytest.mark.parametrize("num_queries", [1, 3])
def test_one_item_galleries(num_queries):
    scores = torch.linspace(-1, 1, num_queries, dtype=torch.float64)[:, None]
    relevant = torch.tensor([True, False, True][:num_queries])[:, None]
    ours = ranking_metrics(scores, relevant, ks=(1, 2))
    expected = brute_force(scores, relevant, None, (1, 2))
    for name, values in expected.items():
        np.testing.assert_allclose(ours[name].numpy(), values, atol=1e-12, err_msg=name)


def test_summarize_skips_the_count_wherever_it_is_and_gives_nan_without_relevant():
    nan = float("nan")
    per_query = {
        "num_relevant": torch.tensor([2.0, 0.0, 1.0]),
        "ap": torch.tensor([0.5, nan, 1.0], dtype=torch.float64),
        "precision@1": torch.tensor([0.0, nan, 1.0], dtype=torch.float64),
    }
    summary = summarize(per_query)
    assert summary == {
        "mAP": 0.75,
        "precision@1": 0.5,
        "num_queries": 3,
        "num_queries_without_relevant": 1,
    }
    none_relevant = summarize({name: values[1:2] for name, values in per_query.items()})
    assert math.isnan(none_relevant["mAP"]) and math.isnan(none_relevant["precision@1"])
    assert none_relevant["num_queries_without_relevant"] == 1


def test_more_queries_than_gallery_items_in_small_blocks(monkeypatch):
    scores, relevant, valid = random_problem(seed=11, num_queries=50, num_gallery=20, masked=True)
    reference = ranking_metrics(scores, relevant, KS, valid)
    monkeypatch.setattr("fastap_lab.retrieval.metrics._BLOCK_ENTRIES", 3 * scores.shape[1])
    blocked = ranking_metrics(scores, relevant, KS, valid)
    expected = brute_force(scores, relevant, valid, KS)
    for name, values in expected.items():
        np.testing.assert_allclose(blocked[name].numpy(), values, atol=1e-12, err_msg=name)
        torch.testing.assert_close(blocked[name], reference[name], equal_nan=True)


def test_empty_gallery_gives_a_nan_row_per_query():
    per_query = ranking_metrics(torch.zeros(3, 0), torch.zeros(3, 0, dtype=torch.bool), ks=(1,))
    assert per_query["num_relevant"].tolist() == [0, 0, 0]
    assert all(torch.isnan(per_query[name]).all() for name in ("ap", "precision@1", "map@r"))


def dense_problem(seed, dtype, levels=None, masked=False):
    """Binary-label retrieval as users run it: 30-50 % of each row relevant, scores optionally
    quantised to ``levels`` values (long tie groups mixing relevant and irrelevant items)."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(50, 90, generator=generator, dtype=torch.float64) * 2 - 1
    if levels:
        scores = torch.round(scores * (levels // 2)) / (levels // 2)
    share = 0.3 + 0.2 * torch.rand(50, 1, generator=generator)
    relevant = torch.rand(50, 90, generator=generator) < share
    valid = torch.rand(50, 90, generator=generator) < 0.8 if masked else None
    return scores.to(dtype), relevant, valid


@DTYPES
@pytest.mark.parametrize("levels", [None, 3, 9])
@pytest.mark.parametrize("masked", [False, True])
def test_dense_binary_relevance_equals_sklearn_and_brute_force(levels, masked, dtype):
    scores, relevant, valid = dense_problem(11 + (levels or 0) + masked, dtype, levels, masked)
    assert 0.3 < relevant.float().mean() < 0.5
    ours = ranking_metrics(scores, relevant, KS, valid)
    np.testing.assert_allclose(
        ours["ap"].numpy(), sklearn_ap(scores, relevant, valid), rtol=0, atol=1e-12
    )
    for name, values in brute_force(scores, relevant, valid, KS).items():
        np.testing.assert_allclose(ours[name].numpy(), values, rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("threads", [1, 2])
def test_blocks_on_worker_threads_equal_one_block(monkeypatch, threads):
    # Tiny blocks (3 rows) spread over worker threads, with tie runs that end a row.
    scores, relevant, valid = dense_problem(5, torch.float32, levels=5, masked=True)
    scores[:, -4:] = scores[:, -5:-4]
    reference = ranking_metrics(scores, relevant, KS, valid)
    monkeypatch.setattr("fastap_lab.retrieval.metrics._BLOCK_ENTRIES", 3 * scores.shape[1])
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        blocked = ranking_metrics(scores, relevant, KS, valid)
    finally:
        torch.set_num_threads(previous)
    for name, values in reference.items():
        torch.testing.assert_close(blocked[name], values, equal_nan=True, rtol=0, atol=0)
    np.testing.assert_allclose(
        reference["ap"].numpy(), sklearn_ap(scores.double(), relevant, valid), atol=1e-12
    )
