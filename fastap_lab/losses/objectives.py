"""The FastAP training objective: which pairs are positives, then the exact FastAP loss."""

from __future__ import annotations

import torch

from fastap_lab.errors import ConfigError
from fastap_lab.losses.fastap import fastap_loss
from fastap_lab.losses.positives import positives_from_labels, positives_from_times

POSITIVE_MODES = ("views", "labels", "temporal", "surrogate")


class FastAPObjective:
    """FastAP over a batch whose positives come from views, labels or time.

    Args:
        bins, kernel, sigma: passed to :func:`fastap_lab.losses.fastap.fastap_loss`.
        positives: ``views`` — the two augmented views of a frame are each other's only
            positives (no labels needed; the reference report's ``use_labels=false``);
            ``labels`` — same label (``use_labels=true``); ``temporal`` — frames within
            ``window`` time units of each other in the same video.
        window: the temporal window (``time`` units: seconds, or frame steps without a time column).
        tolerance: ``surrogate`` — frames whose respiratory surrogate (scaled so the breathing
            range is 0..1, see :func:`scale_phase`) differs by at most ``tolerance`` are
            positives, whichever breathing cycle they come from. No labels needed; the
            surrogate is given per frame with :meth:`set_phase` before training.
    """

    def __init__(
        self,
        bins: int = 10,
        kernel: str = "triangular",
        sigma: float | None = None,
        positives: str = "views",
        window: float = 1.0,
        tolerance: float = 0.1,
    ) -> None:
        if positives not in POSITIVE_MODES:
            raise ConfigError(f"loss.positives={positives!r}: choose one of {list(POSITIVE_MODES)}")
        if positives == "temporal" and window <= 0:
            raise ConfigError(f"loss.window={window}: must be > 0 for loss.positives=temporal")
        if positives == "surrogate" and not 0 < tolerance < 1:
            raise ConfigError(
                f"loss.tolerance={tolerance}: must be in (0, 1) (a share of the breathing range)"
            )
        self.bins, self.kernel, self.sigma = bins, kernel, sigma
        self.positives, self.window, self.tolerance = positives, float(window), float(tolerance)
        self.phase: torch.Tensor | None = None
        # Validate bins / kernel / sigma now, not at the first training step.
        fastap_loss(
            torch.eye(2), torch.eye(2, dtype=torch.bool), bins=bins, kernel=kernel, sigma=sigma
        )

    @property
    def num_views(self) -> int:
        """Augmented views per frame in a batch."""
        return 2 if self.positives == "views" else 1

    def set_phase(self, phase: torch.Tensor) -> None:
        """Set the respiratory phase of every frame (for ``positives=surrogate``).

        The respiratory phase of every frame, float [N_frames] indexed like batches' ``index``
        (already scaled to the 0..1 breathing range); needed by ``positives=surrogate``.
        """
        self.phase = phase.detach().float()

    def positive_mask(
        self, index: torch.Tensor, labels: torch.Tensor, times: torch.Tensor, groups: torch.Tensor
    ) -> torch.Tensor:
        """BoolTensor [N, N] (diagonal False) from per-item frame index / label / time / video [N]."""
        if self.positives == "views":
            return positives_from_labels(index)
        if self.positives == "labels":
            return positives_from_labels(labels)
        if self.positives == "surrogate":
            if self.phase is None:
                raise ConfigError("loss.positives=surrogate: no respiratory surrogate was set")
            # Close in breathing phase, from any cycle or recording: the same 1-D closeness rule.
            return positives_from_times(self.phase.to(index.device)[index], self.tolerance)
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


def scale_phase(surrogate: torch.Tensor, low: float = 0.01, high: float = 0.99) -> torch.Tensor:
    """Scale a surrogate to the 0..1 breathing range by its quantiles.

    Float [N] -> float [N] with its ``low`` and ``high`` quantiles at 0 and 1 (clipped):
    the breathing range as 0..1, robust to a few outlying frames. Sign is kept.
    """
    values = surrogate.double()
    bottom, top = torch.quantile(values, low), torch.quantile(values, high)
    if top <= bottom:
        raise ConfigError("loss.positives=surrogate: the surrogate is constant over the frames")
    return ((values - bottom) / (top - bottom)).clamp(0.0, 1.0).float()
