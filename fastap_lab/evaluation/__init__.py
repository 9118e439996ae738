"""Retrieval evaluation of trained embeddings, as a library (pure: no Lightning, no Hydra).

Behind ``python -m fastap_lab.evaluate`` (whose glue is :mod:`fastap_lab.evaluation_task`):
embedding, retrieval tables, the retrieval grid, embedding diagnostics and the record. Also the
work of ``embed`` / ``search`` / ``export``: gallery_embed, gallery_search, export_embedder.
"""
