"""The FastAP training objective: which pairs are positives, then the exact FastAP loss."""

from __future__ import annotations

import torch

from fastap_lab.errors import ConfigError
from fastap_lab.losses.fastap import fastap_loss, positives_from_labels, positives_from_times

POSITIVE_MODES = ("views", "labels", "temporal")


class FastAPObjective:
    """FastAP over a batch whose positives come from views, labels or time.

    Args:
        bins, kernel, sigma: passed to :func:`fastap_lab.losses.fastap.fastap_loss`.
        positives: ``views`` — the two augmented views of a frame are each other's only
            positives (no labels needed; the reference report's ``use_labels=false``);
            ``labels`` — same label (``use_labels=true``); ``temporal`` — frames within
            ``window`` time units of each other in the same video.
        window: the temporal window (``time`` units: seconds, or frame steps without a time column).
    """

    def __init__(
        self,
        bins: int = 10,
        kernel: str = "triangular",
        sigma: float | None = None,
        positives: str = "views",
        window: float = 1.0,
    ) -> None:
        if positives not in POSITIVE_MODES:
            raise ConfigError(f"loss.positives={positives!r}: choose one of {list(POSITIVE_MODES)}")
        if positives == "temporal" and window <= 0:
            raise ConfigError(f"loss.window={window}: must be > 0 for loss.positives=temporal")
        self.bins, self.kernel, self.sigma = bins, kernel, sigma
        self.positives, self.window = positives, float(window)
        # Validate bins / kernel / sigma now, not at the first training step.
        fastap_loss(
            torch.eye(2), torch.eye(2, dtype=torch.bool), bins=bins, kernel=kernel, sigma=sigma
        )

    @property
    def num_views(self) -> int:
        """Augmented views per frame in a batch."""
        return 2 if self.positives == "views" else 1

    def positive_mask(
        self, index: torch.Tensor, labels: torch.Tensor, times: torch.Tensor, groups: torch.Tensor
    ) -> torch.Tensor:
        """BoolTensor [N, N] (diagonal False) from per-item frame index / label / time / video [N]."""
        if self.positives == "views":
            return positives_from_labels(index)
        if self.positives == "labels":
            return positives_from_labels(labels)
        # The one temporal rule (|dt| <= window, same video), shared with the mask builders.
        return positives_from_times(times, self.window, groups)

    def __call__(
        self, embeddings: torch.Tensor, positives: torch.Tensor, anchors: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``embeddings`` [N, D], ``positives`` [N, N] -> scalar loss over ``anchors`` (rows)."""
        return fastap_loss(
            embeddings,
            positives,
            bins=self.bins,
            kernel=self.kernel,
            sigma=self.sigma,
            anchors=anchors,
        )
