"""A respiratory surrogate from the images alone (or from any per-frame embedding).

Frames -> rigid registration (phase correlation, :mod:`.register`) -> intensity normalisation
(:mod:`.normalize`) -> a low-dimensional embedding (PCA, or a Laplacian eigenmap) -> the
coordinate with the most respiratory-band power that is also smooth in time
(:func:`.signal.respiratory_score`) -> oriented (:func:`.signal.orient`), lightly smoothed.

Breath-holds are plateaus of the chosen coordinate: nothing detrends or high-passes it, so a
hold keeps its level. Irregular breathing spreads power inside the band, which is all the
choice asks for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from fastap_lab.errors import ConfigError, DataError
from fastap_lab.respiration.normalize import METHODS, normalise_intensity
from fastap_lab.respiration.register import register_frames
from fastap_lab.respiration.signal import (
    RESPIRATORY_BAND,
    choose_respiratory,
    laplacian_eigenmap,
    orient,
    pca_scores,
    respiratory_score,
    sampling_rate,
    smooth_in_time,
    spectrum,
    time_segments,
)

EMBEDDINGS = ("pca", "laplacian")


@dataclass(frozen=True)
class SurrogateSettings:
    """How the surrogate is computed (conf/surrogate.yaml ``surrogate.*``).

    Attributes:
        band: respiratory band (low, high) in Hz.
        register: rigid registration of the frames first.
        registration_passes: estimate / re-reference rounds of the registration.
        bias_sigma: blur (fraction of the image side) of the copy divided out; 0: none.
        normalise: per-frame ``zscore`` (robust) | ``rank`` | ``none``, after the bias removal.
        smooth_sigma: light spatial blur in pixels against noise and speckle.
        embedding: ``pca`` | ``laplacian``.
        components: candidate coordinates examined.
        neighbours: kNN graph size of the Laplacian eigenmap.
        smooth_seconds: Gaussian smoothing of the chosen coordinate in time (0: none).
        low_frame: index (input order) of a frame known to be at end-exhale: the sign puts it
            low; None: the default convention of :func:`.signal.orient`.
    """

    band: tuple[float, float] = RESPIRATORY_BAND
    register: bool = True
    registration_passes: int = 2
    bias_sigma: float = 0.125
    normalise: str = "zscore"
    smooth_sigma: float = 1.0
    embedding: str = "pca"
    components: int = 10
    neighbours: int = 10
    smooth_seconds: float = 0.25
    low_frame: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "band", tuple(float(v) for v in self.band))


def checked_settings(values: dict) -> SurrogateSettings:
    """``surrogate.*`` (a plain dict) checked: SurrogateSettings, or one ConfigError line."""
    band = values.get("band")
    if not (isinstance(band, list) and len(band) == 2 and 0 < band[0] < band[1]):
        raise ConfigError(f"surrogate.band={band}: give [low, high] in Hz, 0 < low < high")
    checks = {
        "normalise": (values["normalise"] in METHODS, f"choose one of {list(METHODS)}"),
        "embedding": (values["embedding"] in EMBEDDINGS, f"choose one of {list(EMBEDDINGS)}"),
        "components": (values["components"] >= 1, "must be >= 1"),
        "neighbours": (values["neighbours"] >= 1, "must be >= 1"),
        "registration_passes": (values["registration_passes"] >= 1, "must be >= 1"),
    }
    for name in ("bias_sigma", "smooth_sigma", "smooth_seconds"):
        checks[name] = (values[name] >= 0, "must be >= 0 (0 switches it off)")
    for name, (ok, fix) in checks.items():
        if not ok:
            raise ConfigError(f"surrogate.{name}={values[name]!r}: {fix}")
    return SurrogateSettings(**values)


@dataclass
class Surrogate:
    """A respiratory surrogate and the scores of the candidates it was chosen from.

    The result. ``values`` float64 [N] in the input's frame order; per candidate [K]:
    ``band_shares``, ``smoothness``, ``scores`` (band share x smoothness; the chosen one is the
    strongest in-band candidate among those scoring >= half the best), ``variance_shares``
    (PCA only, else None); ``shifts`` float64 [N, 2] (dy, dx) px when frames were registered.
    """

    values: torch.Tensor
    component: int
    fps: float
    cycles: float
    duration: float
    band_shares: torch.Tensor
    smoothness: torch.Tensor
    scores: torch.Tensor
    variance_shares: torch.Tensor | None = None
    shifts: torch.Tensor | None = None
    settings: dict = field(default_factory=dict)

    @property
    def band_share(self) -> float:
        """The chosen component's share of power in the breathing band."""
        return float(self.band_shares[self.component])


def gray_frames(frames: torch.Tensor) -> torch.Tensor:
    """uint8 / float [N, C, H, W] or [N, H, W] -> float64 [N, H, W] (mean over channels)."""
    x = frames.double()
    return x.mean(dim=1) if x.dim() == 4 else x


def frame_features(
    frames: torch.Tensor, settings: SurrogateSettings
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Registered, normalised, border-cropped frames as rows: (float64 [N, P], shifts [N, 2] | None)."""
    x = gray_frames(frames)
    if float(x.std(dim=0).max()) == 0.0:
        raise DataError("every frame is identical: there is no respiratory signal to estimate")
    shifts = None
    if settings.register:
        x, shifts = register_frames(x, settings.registration_passes)
    side = min(x.shape[-2:])
    x = normalise_intensity(
        x, settings.bias_sigma * side, settings.normalise, settings.smooth_sigma
    )
    margin = _margin(shifts, side)
    if margin:
        x = x[:, margin:-margin, margin:-margin]
    return x.flatten(1), shifts


def _margin(shifts: torch.Tensor | None, side: int) -> int:
    """Border pixels to drop: those the registration filled from outside (99th percentile)."""
    if shifts is None:
        return 0
    largest = float(shifts.abs().quantile(0.99)) if shifts.numel() else 0.0
    return min(int(largest) + 1, side // 8)


def choose_coordinate(
    coordinates: torch.Tensor,
    times: torch.Tensor,
    groups: torch.Tensor | None,
    settings: SurrogateSettings,
    variance_shares: torch.Tensor | None = None,
) -> Surrogate:
    """Pick the respiratory coordinate among candidates [N, K] and orient / smooth it."""
    segments = time_segments(times.double(), groups)
    fps = sampling_rate(times.double(), segments)
    spec = spectrum(coordinates, segments, fps, settings.band)
    scores = respiratory_score(spec)
    best = choose_respiratory(spec, prefer_first=settings.embedding == "laplacian")
    values = smooth_in_time(coordinates[:, best], segments, fps, settings.smooth_seconds)
    values = values * orient(values, settings.low_frame)
    scale = values.std()
    values = (values - values.median()) / (scale if scale > 0 else 1.0)
    return Surrogate(
        values=values, component=best, fps=fps,
        cycles=float(spec.band_frequency[best]) * spec.duration, duration=spec.duration,
        band_shares=spec.band_share, smoothness=spec.smoothness, scores=scores,
        variance_shares=variance_shares, settings=asdict(settings),
    )  # fmt: skip


def embed(features: torch.Tensor, settings: SurrogateSettings):
    """Candidate coordinates [N, K] and the PCA variance shares [K] (None for Laplacian)."""
    if settings.embedding not in EMBEDDINGS:
        raise ValueError(f"embedding={settings.embedding!r}: choose one of {list(EMBEDDINGS)}")
    if settings.embedding == "laplacian":
        return laplacian_eigenmap(features, settings.components, settings.neighbours), None
    return pca_scores(features, settings.components)


def surrogate_from_frames(
    frames: torch.Tensor,
    times: torch.Tensor,
    groups: torch.Tensor | None = None,
    settings: SurrogateSettings | None = None,
) -> Surrogate:
    """Respiratory surrogate of an image sequence.

    Args:
        frames: uint8 or float [N, C, H, W] (or [N, H, W]), non-negative intensities.
        times: float [N] seconds (any order; sorted per group for the spectra).
        groups: int64 [N] recording of each frame, or None (one recording).
        settings: see :class:`SurrogateSettings`.

    Returns:
        :class:`Surrogate` with ``values`` float64 [N] (median 0, unit standard deviation).
    """
    settings = settings or SurrogateSettings()
    features, shifts = frame_features(frames, settings)
    coordinates, shares = embed(features, settings)
    result = choose_coordinate(coordinates, times, groups, settings, shares)
    result.shifts = shifts
    return result


def surrogate_from_embeddings(
    embeddings: torch.Tensor,
    times: torch.Tensor,
    groups: torch.Tensor | None = None,
    settings: SurrogateSettings | None = None,
) -> Surrogate:
    """Respiratory surrogate from per-frame embeddings.

    Respiratory surrogate from per-frame embeddings float [N, D] (e.g. a model's
    embeddings.npy): the same embedding and band choice, without registration / normalisation.
    """
    settings = settings or SurrogateSettings()
    coordinates, shares = embed(embeddings.double(), settings)
    return choose_coordinate(coordinates, times, groups, settings, shares)
