"""Networks: ResNet backbones and the projector, predictor and embedding heads."""

from fastap_lab.models.backbones import ResNetBackbone
from fastap_lab.models.heads import EmbeddingHead, Predictor, Projector

__all__ = ["EmbeddingHead", "Predictor", "Projector", "ResNetBackbone"]
