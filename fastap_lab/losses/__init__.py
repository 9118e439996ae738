"""Losses and the positives they rank.

FastAP (soft-binned average precision) and its positive masks, SimSiam, and the stage
objectives that pick positives.
"""

from fastap_lab.losses.fastap import fastap_loss
from fastap_lab.losses.positives import (
    positives_from_labels,
    positives_from_times,
    positives_from_views,
)
from fastap_lab.losses.simsiam import normalized_std, simsiam_loss

__all__ = [
    "fastap_loss",
    "normalized_std",
    "positives_from_labels",
    "positives_from_times",
    "positives_from_views",
    "simsiam_loss",
]
