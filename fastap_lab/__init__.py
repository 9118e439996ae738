"""fastap_lab: SimSiam pretraining and FastAP fine-tuning of video-frame embeddings."""

__version__ = "0.1.0"
