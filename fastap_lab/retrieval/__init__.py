"""Exact retrieval metrics (equal to scikit-learn's AP, negative scores included) and chunked search."""

from fastap_lab.retrieval.metrics import metric_names, ranking_metrics, summarize
from fastap_lab.retrieval.search import (
    GalleryExclusion,
    evaluate_all_vs_all,
    evaluate_embeddings,
    topk_search,
)

__all__ = [
    "GalleryExclusion",
    "evaluate_all_vs_all",
    "evaluate_embeddings",
    "metric_names",
    "ranking_metrics",
    "summarize",
    "topk_search",
]
