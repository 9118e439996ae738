"""Exact retrieval metrics (equal to scikit-learn's AP, negative scores included) and chunked search."""

from fastap_lab.retrieval.exclusion import GalleryExclusion
from fastap_lab.retrieval.metrics import (
    cutoffs_within_gallery,
    metric_names,
    ranking_metrics,
    single_label_warning,
    summarize,
)
from fastap_lab.retrieval.search import evaluate_all_vs_all, evaluate_embeddings
from fastap_lab.retrieval.topk import topk_search

__all__ = [
    "GalleryExclusion",
    "cutoffs_within_gallery",
    "evaluate_all_vs_all",
    "evaluate_embeddings",
    "metric_names",
    "ranking_metrics",
    "single_label_warning",
    "summarize",
    "topk_search",
]
