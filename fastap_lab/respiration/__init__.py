"""Respiratory surrogate from image sequences: registration, normalisation, embedding, band choice.

Pure (numpy / torch only). Entry point: ``python -m fastap_lab.surrogate``.
"""

from fastap_lab.respiration.pipeline import (  # noqa: F401
    Surrogate,
    SurrogateSettings,
    surrogate_from_embeddings,
    surrogate_from_frames,
)
