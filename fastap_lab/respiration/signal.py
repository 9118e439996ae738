"""Low-dimensional embeddings of a sequence and the choice of its respiratory coordinate.

Signals are float64 ``[N, K]``: K candidate time courses over the N frames (frame order as
given). ``segments`` lists, per recording (video / group), the int64 indices of its frames in
time order; spectra are computed per segment and pooled, so separate recordings never join.
Times are in seconds and each segment is taken as evenly sampled at ``fps``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fastap_lab.errors import DataError

RESPIRATORY_BAND = (0.1, 0.7)  # Hz: adult breathing at rest is ~0.15-0.5 Hz (9-30 per minute)


EXACT_PCA_LIMIT = 4000  # frames; above this, randomized PCA (the N x N Gram would be too big)


def pca_scores(features: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Principal-component scores of the rows: features [N, P] -> (scores [N, k'], share [k']).

    ``share`` is each component's fraction of the total variance; k' = min(k, N - 1, P). Exact
    (deterministic) SVD of the centred data, via the N x N Gram matrix when P > N; above
    ``EXACT_PCA_LIMIT`` frames a randomized SVD (Halko et al.) with a fixed seed.
    """
    x = features.double()
    x = x - x.mean(dim=0, keepdim=True)
    total = (x**2).sum()
    if total <= 0:
        raise DataError("the frames do not change over time: there is no signal to estimate")
    k = max(1, min(k, x.shape[0] - 1, x.shape[1]))
    if x.shape[0] > EXACT_PCA_LIMIT:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            u, singular, _ = torch.svd_lowrank(x, q=min(k + 10, min(x.shape)), niter=4)
        values, scores = singular[:k] ** 2, u[:, :k] * singular[:k]
    elif x.shape[1] > x.shape[0]:
        values, vectors = torch.linalg.eigh(x @ x.T)  # ascending
        values, vectors = values.flip(0)[:k].clamp_min(0), vectors.flip(1)[:, :k]
        scores = vectors * values.sqrt()
    else:
        _, singular, vt = torch.linalg.svd(x, full_matrices=False)
        values, scores = singular[:k] ** 2, x @ vt[:k].T
    return scores, values / total


def laplacian_eigenmap(features: torch.Tensor, k: int, neighbours: int = 10) -> torch.Tensor:
    """Laplacian eigenmap (Belkin & Niyogi) of the rows: features [N, P] -> coordinates [N, k'].

    Symmetric kNN graph with heat-kernel weights (scale: median neighbour distance), the
    eigenvectors of the normalised Laplacian after the constant one, k' = min(k, N - 2).
    Dense: O(N²) memory, meant for up to a few thousand frames.
    """
    x = pca_scores(features, 20)[0]  # denoise and speed up the distances
    n = x.shape[0]
    neighbours = max(1, min(neighbours, n - 1))
    distances = torch.cdist(x, x)
    knn = distances.topk(neighbours + 1, largest=False).indices[:, 1:]
    mask = torch.zeros(n, n, dtype=torch.bool)
    mask.scatter_(1, knn, True)
    mask = mask | mask.T
    scale = distances.gather(1, knn).median().clamp_min(1e-12)
    weights = torch.where(mask, torch.exp(-((distances / scale) ** 2)), 0.0)
    inv_sqrt_degree = weights.sum(dim=1).clamp_min(1e-12).rsqrt()
    affinity = inv_sqrt_degree[:, None] * weights * inv_sqrt_degree[None, :]
    _, vectors = torch.linalg.eigh(affinity)  # ascending: the top ones are the smooth maps
    k = max(1, min(k, n - 2))
    vectors = vectors.flip(1)[:, 1 : k + 1]
    return vectors * inv_sqrt_degree[:, None]


def time_segments(times: torch.Tensor, groups: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Per group (all frames when ``groups`` is None), its frame indices int64 [M] by time."""
    groups = torch.zeros_like(times, dtype=torch.int64) if groups is None else groups
    segments = []
    for group in groups.unique(sorted=True):
        index = (groups == group).nonzero().reshape(-1)
        segments.append(index[times[index].argsort(stable=True)])
    return segments


def sampling_rate(times: torch.Tensor, segments: list[torch.Tensor]) -> float:
    """Frames per second: 1 / median positive time step within the segments."""
    steps = torch.cat([times[s].diff() for s in segments if s.numel() > 1])
    steps = steps[steps > 0]
    if steps.numel() == 0:
        raise DataError("every frame has the same time: the sampling rate is unknown")
    return float(1.0 / steps.median())


@dataclass
class Spectrum:
    """Spectral measures of each candidate signal.

    Per candidate signal [K]: in-band power, total power (both without the mean), their
    ratio, mean in-band frequency (Hz), lag-1 autocorrelation (smoothness); duration (s).
    """

    band_power: torch.Tensor
    total_power: torch.Tensor
    band_share: torch.Tensor
    band_frequency: torch.Tensor
    smoothness: torch.Tensor
    duration: float


def spectrum(
    signals: torch.Tensor, segments: list[torch.Tensor], fps: float, band=RESPIRATORY_BAND
) -> Spectrum:
    """Hann-windowed periodograms of each segment, pooled (see :class:`Spectrum`)."""
    k = signals.shape[1]
    in_band, total, weighted = torch.zeros(k), torch.zeros(k), torch.zeros(k)
    lagged, energy = torch.zeros(k), torch.zeros(k)
    duration = 0.0
    for segment in segments:
        if segment.numel() < 4:
            continue
        x = signals[segment].double()
        x = x - x.mean(dim=0)
        duration += segment.numel() / fps
        lagged += (x[1:] * x[:-1]).sum(dim=0).float()
        energy += (x**2).sum(dim=0).float()
        window = torch.hann_window(x.shape[0], periodic=False, dtype=x.dtype)[:, None]
        power = torch.fft.rfft(x * window, dim=0).abs() ** 2
        freqs = torch.fft.rfftfreq(x.shape[0], d=1.0 / fps, dtype=x.dtype)
        inside = (freqs >= band[0]) & (freqs <= band[1])
        in_band += power[inside].sum(dim=0).float()
        weighted += (power[inside] * freqs[inside, None]).sum(dim=0).float()
        total += power[1:].sum(dim=0).float()  # without the DC bin
    if duration == 0.0:
        raise DataError("fewer than 4 frames: too short for a respiratory signal")
    return Spectrum(
        band_power=in_band,
        total_power=total,
        band_share=in_band / total.clamp_min(1e-30),
        band_frequency=weighted / in_band.clamp_min(1e-30),
        smoothness=lagged / energy.clamp_min(1e-30),
        duration=duration,
    )


def respiratory_score(spec: Spectrum) -> torch.Tensor:
    """[K]: band share x max(lag-1 autocorrelation, 0) - how respiratory each candidate looks.

    A slow drift is smooth but out of band; per-frame jitter leaks into the band but is rough.
    """
    return spec.band_share * spec.smoothness.clamp_min(0.0)


QUALIFY = 0.5  # a candidate qualifies with at least this fraction of the best respiratory score


def choose_respiratory(spec: Spectrum, prefer_first: bool = False) -> int:
    """Index of the candidate chosen as the respiratory coordinate.

    Index of the respiratory coordinate: among the candidates whose
    :func:`respiratory_score` is at least ``QUALIFY`` x the best, the one with the most in-band
    power (PCA scores), or the first one (``prefer_first``: Laplacian eigenmap coordinates,
    which come ordered from the smoothest map on the frames' manifold and share one scale).

    Not simply the best score: a weak harmonic of the breathing (e.g. the square of the
    displacement in a later component) can have a larger in-band *share* than the breathing
    coordinate, whose share breath-holds lower (plateaus are slow). Not simply the most in-band
    power either: a drift many times stronger than the breathing leaks more power into the band
    than the breathing has.
    """
    score = respiratory_score(spec)
    qualified = score >= QUALIFY * score.max()
    if prefer_first:
        return int(qualified.nonzero()[0, 0])
    return int(torch.where(qualified, spec.band_power, -1.0).argmax())


def orient(signal: torch.Tensor, low_frame: int | None = None) -> float:
    """+1 or -1, the sign to multiply ``signal`` [N] by.

    ``low_frame`` given: the sign that puts that frame at or below the median (a frame the user
    knows to be at end-exhale). Otherwise the default convention: the sign that puts the
    signal's median below its mean (low = where the sequence dwells). Images alone do not fix
    the anatomical direction: the map from displacement to an image coordinate is nonlinear
    and contrast-dependent, so the default may come out inverted (see |r| in the README).
    """
    if low_frame is not None:
        return 1.0 if float(signal[low_frame]) <= float(signal.median()) else -1.0
    return 1.0 if float(signal.mean()) >= float(signal.median()) else -1.0


def smooth_in_time(
    signal: torch.Tensor, segments: list[torch.Tensor], fps: float, seconds: float
) -> torch.Tensor:
    """Gaussian smoothing (sigma ``seconds``, replicated ends) of [N] within each segment."""
    if seconds <= 0:
        return signal.clone()
    sigma = seconds * fps
    radius = max(1, int(3 * sigma + 0.5))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).view(1, 1, -1)
    out = signal.clone().double()
    for segment in segments:
        x = signal[segment].double().view(1, 1, -1)
        x = torch.nn.functional.pad(x, (radius, radius), mode="replicate")
        out[segment] = torch.nn.functional.conv1d(x, kernel).view(-1)
    return out


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two [N] series (nan when either is constant)."""
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    denominator = float(a.norm() * b.norm())
    return float((a * b).sum()) / denominator if denominator > 0 else float("nan")
