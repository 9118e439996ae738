"""Notebook helpers: load evaluated runs, compare embedding distributions, review queries.

The notebooks under ``notebooks/`` hold no logic of their own; everything they show comes from
here (plain tensors and matplotlib figures, no Lightning).
"""

from fastap_lab.analysis.distribution import project_2d, spread_rows
from fastap_lab.analysis.plots import (
    plot_dimension_std,
    plot_projection,
    plot_query_review,
    plot_similarity_histograms,
)
from fastap_lab.analysis.query_review import QueryReview, hits_rows, review_query
from fastap_lab.analysis.runs import RunEmbeddings, latest_run, load_embeddings, markdown_table

__all__ = [
    "QueryReview",
    "RunEmbeddings",
    "hits_rows",
    "latest_run",
    "load_embeddings",
    "markdown_table",
    "plot_dimension_std",
    "plot_projection",
    "plot_query_review",
    "plot_similarity_histograms",
    "project_2d",
    "review_query",
    "spread_rows",
]
