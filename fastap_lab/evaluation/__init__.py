"""Retrieval evaluation of trained embeddings.

Behind ``python -m fastap_lab.evaluate``: embedding, retrieval tables, the retrieval grid and
embedding diagnostics.
"""
