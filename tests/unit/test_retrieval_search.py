"""Chunked evaluate_embeddings / topk_search against dense references and brute-force masks."""

import pytest
import torch
import torch.nn.functional as F

from fastap_lab.errors import ConfigError
from fastap_lab.retrieval.metrics import ranking_metrics
from fastap_lab.retrieval.search import evaluate_all_vs_all, evaluate_embeddings
from fastap_lab.retrieval.topk import topk_search

KS = (1, 5, 20)


def clustered_frames(seed, num_items=70, dim=8, quantised=False):
    """Embeddings, labels (5 classes), times (frame numbers) and groups (3 videos)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 5, (num_items,), generator=generator)
    centres = torch.randn(5, dim, generator=generator, dtype=torch.float64)
    embeddings = centres[labels] + torch.randn(num_items, dim, generator=generator).double()
    if quantised:
        # Four entries of +-0.5: unit norm exactly, so every cosine is an exact multiple of
        # 0.25 whatever the matmul blocking -> many genuinely tied scores.
        keep = torch.rand(num_items, dim, generator=generator).argsort(1) < 4
        embeddings = torch.where(embeddings > 0, 0.5, -0.5) * keep
    groups = torch.randint(0, 3, (num_items,), generator=generator)
    times = torch.randint(0, 25, (num_items,), generator=generator).double()
    return embeddings, labels, times, groups


def brute_force_valid(num_items, times, groups, window):
    """[N, N] True where item g stays in query q's gallery, written out pair by pair."""
    valid = torch.ones(num_items, num_items, dtype=torch.bool)
    for q in range(num_items):
        for g in range(num_items):
            near = abs(times[q] - times[g]) <= window and groups[q] == groups[g]
            valid[q, g] = q != g and not (window > 0 and near)
    return valid


def cosine(a, b):
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T


@pytest.mark.parametrize("chunk_size", [1, 7, 70, 500])
@pytest.mark.parametrize("quantised", [False, True])
def test_chunked_all_vs_all_equals_dense(chunk_size, quantised):
    embeddings, labels, times, groups = clustered_frames(seed=0, quantised=quantised)
    valid = brute_force_valid(len(labels), times, groups, window=3)
    relevant = labels[:, None] == labels[None, :]
    expected = ranking_metrics(cosine(embeddings, embeddings), relevant, KS, valid)
    ours = evaluate_all_vs_all(
        embeddings, labels, times, groups, exclusion_window=3, ks=KS, chunk_size=chunk_size
    )
    assert set(ours) == set(expected)
    for name, values in expected.items():
        torch.testing.assert_close(ours[name], values, equal_nan=True, rtol=0, atol=1e-12)


def test_external_queries_and_partial_self_index():
    embeddings, labels, times, groups = clustered_frames(seed=1)
    query, gallery = embeddings[:20], embeddings[10:]
    # Queries 10..19 are gallery items 0..9; queries 0..9 are external.
    query_index = torch.cat([torch.full((10,), -1), torch.arange(10)])
    valid = torch.ones(20, 60, dtype=torch.bool)
    valid[torch.arange(10, 20), torch.arange(10)] = False
    relevant = labels[:20, None] == labels[None, 10:]
    expected = ranking_metrics(cosine(query, gallery), relevant, KS, valid)
    ours = evaluate_embeddings(
        query, gallery, labels[:20], labels[10:], ks=KS, query_index=query_index, chunk_size=6
    )
    for name, values in expected.items():
        torch.testing.assert_close(ours[name], values, equal_nan=True, rtol=0, atol=1e-12)


def test_exclusion_window_removes_exactly_near_frames_of_same_video():
    embeddings, labels, times, groups = clustered_frames(seed=2)
    # Every item relevant to every query: num_relevant counts exactly the valid gallery.
    same_label = torch.zeros_like(labels)
    ours = evaluate_all_vs_all(embeddings, same_label, times, groups, exclusion_window=2)
    expected_valid = brute_force_valid(len(labels), times, groups, window=2)
    torch.testing.assert_close(ours["num_relevant"], expected_valid.sum(1).double())
    without_window = evaluate_all_vs_all(embeddings, same_label, times, groups)
    assert (without_window["num_relevant"] == len(labels) - 1).all()


def test_window_without_times_is_a_config_error():
    embeddings, labels, _, _ = clustered_frames(seed=3)
    with pytest.raises(ConfigError, match="exclusion_window"):
        evaluate_all_vs_all(embeddings, labels, exclusion_window=2.0)


def full_sort_topk(scores, valid, k):
    """Reference: stable argsort of masked scores (ties -> lower index), then first k."""
    masked = scores.masked_fill(~valid, float("-inf"))
    order = torch.sort(masked, dim=1, descending=True, stable=True).indices[:, :k]
    return masked.gather(1, order), order


@pytest.mark.parametrize("gallery_chunk_size", [1, 9, 1000])
@pytest.mark.parametrize("quantised", [False, True])
def test_topk_equals_full_sort(gallery_chunk_size, quantised):
    embeddings, _, times, groups = clustered_frames(seed=4, quantised=quantised)
    scores = cosine(embeddings, embeddings)
    valid = brute_force_valid(len(times), times, groups, window=4)
    k_effective = min(10, int(valid.sum(1).min()))
    expected_scores, expected_indices = full_sort_topk(scores, valid, k_effective)
    if quantised:
        assert (expected_scores[:, :-1] == expected_scores[:, 1:]).any()  # ties are exercised
    found_scores, found_indices = topk_search(
        embeddings,
        embeddings,
        10,
        query_index=torch.arange(len(times)),
        query_times=times,
        gallery_times=times,
        query_groups=groups,
        gallery_groups=groups,
        exclusion_window=4,
        chunk_size=11,
        gallery_chunk_size=gallery_chunk_size,
    )
    assert torch.equal(found_indices, expected_indices)
    torch.testing.assert_close(found_scores, expected_scores, rtol=0, atol=1e-12)


def test_topk_clips_k_to_the_valid_gallery():
    embeddings, _, _, _ = clustered_frames(seed=5, num_items=6)
    scores, indices = topk_search(embeddings, embeddings, 50, query_index=torch.arange(6))
    assert indices.shape == (6, 5)
    assert not (indices == torch.arange(6)[:, None]).any()
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize("quantised", [False, True])
def test_topk_of_outside_queries_on_a_unit_gallery_equals_full_sort(quantised):
    """No exclusion and a gallery of unit rows (a stored gallery): the unmasked path and the
    path that trusts the rows give the full sort's top k, ties (quantised) to the lower index."""
    embeddings, _, times, _ = clustered_frames(seed=7, quantised=quantised)
    gallery = F.normalize(embeddings, dim=1)
    queries = gallery[:5] + 0.0  # outside images that happen to equal some frames: ties
    valid = torch.ones(5, len(times), dtype=torch.bool)
    expected_scores, expected_indices = full_sort_topk(cosine(queries, gallery), valid, 10)
    for unit_gallery in (False, True):
        scores, indices = topk_search(queries, gallery, 10, gallery_chunk_size=7,
                                      unit_gallery=unit_gallery)  # fmt: skip
        assert torch.equal(indices, expected_indices)
        torch.testing.assert_close(scores, expected_scores, rtol=0, atol=1e-6)
