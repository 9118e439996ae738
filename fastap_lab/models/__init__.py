"""Networks: ResNet backbones and the projector, predictor and embedding heads."""

from fastap_lab.models.backbones import ResNetBackbone
from fastap_lab.models.heads import EmbeddingHead, EmbeddingNetwork, Predictor, Projector

__all__ = ["EmbeddingHead", "EmbeddingNetwork", "Predictor", "Projector", "ResNetBackbone"]
