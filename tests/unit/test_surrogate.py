"""The respiratory surrogate's pure core: registration, normalisation, component choice."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastap_lab.data.phantom_sequence import render_frame, render_phantom
from fastap_lab.data.phantom_spec import PhantomSpec
from fastap_lab.errors import DataError
from fastap_lab.respiration import (
    SurrogateSettings,
    surrogate_from_embeddings,
    surrogate_from_frames,
)
from fastap_lab.respiration.normalize import normalise_intensity
from fastap_lab.respiration.register import (
    apply_shifts,
    estimate_shifts,
    fourier_shift,
    log_frames,
    register_frames,
)
from fastap_lab.respiration.signal import orient, pearson, smooth_in_time, time_segments

SMALL = dict(num_frames=200, image_size=32, num_breath_holds=1, hold_seconds=(5.0, 7.0))


def _shifted_copies(image: np.ndarray, shifts: torch.Tensor) -> torch.Tensor:
    """float64 [N, H, W]: ``image`` translated by each (dy, dx) (periodic, exact sub-pixel)."""
    base = torch.from_numpy(image.astype(np.float64))
    return fourier_shift(base[None].expand(len(shifts), -1, -1).clone(), -shifts)


@pytest.fixture(scope="module")
def anatomy_image() -> np.ndarray:
    return render_frame(PhantomSpec(image_size=48), 0.3)


def test_registration_recovers_known_shifts(anatomy_image):
    generator = torch.Generator().manual_seed(0)
    true = (torch.rand(30, 2, generator=generator, dtype=torch.float64) - 0.5) * 6  # ±3 px
    clean = _shifted_copies(anatomy_image, true).clamp_min(0)
    # gain, gamma and noise per frame: the estimate must not depend on them
    gain = torch.exp(0.3 * torch.randn(30, 1, 1, generator=generator, dtype=torch.float64))
    gamma = 1 + 0.3 * torch.rand(30, 1, 1, generator=generator, dtype=torch.float64)
    noise = 2.0 * torch.randn(clean.shape, generator=generator, dtype=torch.float64)
    frames = ((clean / 255) ** gamma * gain * 255 + noise).clamp_min(0)
    reference = log_frames(torch.from_numpy(anatomy_image.astype(np.float64))[None])[0]
    direct = estimate_shifts(log_frames(frames), reference)
    assert (direct - true).abs().max() < 0.1
    registered, shifts = register_frames(frames)
    # to the median frame: the same shifts up to one common offset
    relative = (shifts - shifts.mean(0)) - (true - true.mean(0))
    assert relative.abs().max() < 0.1
    assert registered.shape == frames.shape
    aligned = apply_shifts(clean, shifts)  # the noise-free frames, moved back by the estimate
    centre = (slice(6, -6), slice(6, -6))  # away from the replicated borders
    assert aligned.std(0)[centre].mean() < 0.2 * clean.std(0)[centre].mean()


def test_integer_shift_is_exact(anatomy_image):
    true = torch.tensor([[2.0, -3.0], [0.0, 0.0], [-1.0, 4.0]], dtype=torch.float64)
    frames = _shifted_copies(anatomy_image, true).clamp_min(0)
    reference = log_frames(torch.from_numpy(anatomy_image.astype(np.float64))[None])[0]
    assert torch.allclose(estimate_shifts(log_frames(frames), reference), true, atol=0.02)


def test_normalisation_removes_gain_and_smooth_bias(anatomy_image):
    frame = torch.from_numpy(anatomy_image.astype(np.float64))[None] + 1.0
    y, x = torch.meshgrid(torch.linspace(-1, 1, 48), torch.linspace(-1, 1, 48), indexing="ij")
    bias = torch.exp(0.4 * x + 0.3 * y).double()  # smooth multiplicative field
    clean = normalise_intensity(frame, bias_sigma=6.0)
    gained = normalise_intensity(3.0 * frame, bias_sigma=6.0)
    assert torch.allclose(clean, gained, atol=1e-4)
    biased = normalise_intensity(frame * bias, bias_sigma=6.0)
    unnormalised = (frame / frame.std()) - (frame * bias / (frame * bias).std())
    error = (clean - biased)[0, 8:-8, 8:-8].abs().mean()
    assert error < 0.1 * unnormalised[0, 8:-8, 8:-8].abs().mean() / (frame / frame.std()).std()


def _synthetic_sequence(seed: int = 0, n: int = 400, fps: float = 4.0):
    """Pixels [N, 64] mixing a slow drift (strongest), breathing and white noise."""
    generator = np.random.default_rng(seed)
    t = np.arange(n) / fps
    breathing = np.sin(2 * np.pi * 0.25 * t + 0.2 * np.sin(2 * np.pi * 0.03 * t))
    breathing[100:140] = breathing[100]  # a 10 s breath-hold plateau
    drift = np.cumsum(generator.standard_normal(n)) / 3 + 4 * np.sin(2 * np.pi * 0.008 * t)
    patterns = generator.standard_normal((3, 64))
    pixels = (10 * drift[:, None] * patterns[0] + 1.0 * breathing[:, None] * patterns[1]
              + 0.5 * generator.standard_normal((n, 64)))  # fmt: skip
    return torch.from_numpy(pixels), torch.from_numpy(t), torch.from_numpy(breathing)


def test_band_component_beats_a_stronger_drift():
    embeddings, times, breathing = _synthetic_sequence()
    result = surrogate_from_embeddings(embeddings, times)
    assert result.variance_shares[0] > 0.9  # the drift dominates the variance ...
    assert result.component != 0  # ... but is not chosen
    assert abs(pearson(result.values, breathing)) > 0.95
    assert result.band_share > 0.5
    assert 15 < result.cycles < 35  # 100 s at 0.25 Hz, less the hold


def test_band_choice_follows_the_band_setting():
    """A band around the drift's frequencies picks the drift instead: the band decides."""
    embeddings, times, breathing = _synthetic_sequence()
    slow = surrogate_from_embeddings(
        embeddings, times, settings=SurrogateSettings(band=(0.005, 0.05))
    )
    assert slow.component == 0
    assert abs(pearson(slow.values, breathing)) < 0.5


def test_laplacian_eigenmap_option_runs_and_reports_candidates():
    embeddings, times, breathing = _synthetic_sequence(n=240)
    settings = SurrogateSettings(embedding="laplacian", components=6)
    result = surrogate_from_embeddings(embeddings, times, settings=settings)
    assert result.values.shape == (240,) and result.scores.shape == (6,)
    assert result.variance_shares is None


def test_orientation_puts_the_dwell_low():
    t = torch.linspace(0, 60, 600, dtype=torch.float64)
    phase = (t / 4.0) % 1.0
    dwell_low = torch.where(phase < 0.4, torch.sin(math.pi * phase / 0.4), 0.0)  # long rest at 0
    assert orient(dwell_low) == 1.0 and orient(-dwell_low) == -1.0


def test_low_frame_pins_the_sign():
    embeddings, times, breathing = _synthetic_sequence()
    lowest, highest = int(breathing.argmin()), int(breathing.argmax())
    for frame, sign in ((lowest, 1.0), (highest, -1.0)):
        settings = SurrogateSettings(low_frame=frame)
        result = surrogate_from_embeddings(embeddings, times, settings=settings)
        assert result.values[frame] <= result.values.median()
        assert pearson(result.values, breathing) * sign > 0.95


def test_smoothing_keeps_a_plateau():
    signal = torch.cat([torch.zeros(50), torch.ones(100), torch.zeros(50)]).double()
    segments = time_segments(torch.arange(200).double())
    smoothed = smooth_in_time(signal, segments, fps=4.0, seconds=0.5)
    assert torch.allclose(smoothed[70:130], torch.ones(60, dtype=torch.float64))


def test_phantom_surrogate_follows_displacement():
    """A small default-style phantom (breath-hold, irregular breaths, jitter, gain, bias)."""
    sequence = render_phantom(PhantomSpec(**SMALL))
    frames = torch.from_numpy(sequence.frames)[:, None]
    result = surrogate_from_frames(frames, torch.from_numpy(sequence.times))
    assert abs(pearson(result.values, torch.from_numpy(sequence.displacement))) >= 0.9
    assert result.shifts.shape == (200, 2)
    assert result.values.shape == (200,)


def test_registration_matters_under_large_jitter():
    sequence = render_phantom(PhantomSpec(**SMALL, jitter_px=3.0))
    frames, times = torch.from_numpy(sequence.frames)[:, None], torch.from_numpy(sequence.times)
    truth = torch.from_numpy(sequence.displacement)
    registered = surrogate_from_frames(frames, times)
    raw = surrogate_from_frames(frames, times, settings=SurrogateSettings(register=False))
    assert abs(pearson(registered.values, truth)) >= 0.9
    assert abs(pearson(registered.values, truth)) > abs(pearson(raw.values, truth)) + 0.05


def test_constant_sequence_is_refused():
    frames = torch.full((20, 1, 16, 16), 7, dtype=torch.uint8)
    with pytest.raises(DataError, match="identical"):
        surrogate_from_frames(frames, torch.arange(20).double())


def test_randomized_pca_matches_exact(monkeypatch):
    from fastap_lab.respiration import signal

    generator = torch.Generator().manual_seed(0)
    latent = torch.randn(300, 3, generator=generator, dtype=torch.float64) * torch.tensor(
        [9.0, 4.0, 2.0]
    )
    features = latent @ torch.randn(3, 50, generator=generator, dtype=torch.float64)
    features = features + 0.01 * torch.randn(300, 50, generator=generator, dtype=torch.float64)
    exact, exact_share = signal.pca_scores(features, 3)
    monkeypatch.setattr(signal, "EXACT_PCA_LIMIT", 100)
    randomized, share = signal.pca_scores(features, 3)
    assert torch.allclose(share, exact_share, rtol=1e-3)
    for k in range(3):  # equal up to the sign of each component
        assert abs(pearson(randomized[:, k], exact[:, k])) > 0.999


def test_register_images_undoes_known_shifts_on_every_channel():
    from fastap_lab.respiration.register import register_images

    generator = torch.Generator().manual_seed(3)
    base = torch.zeros(48, 48, dtype=torch.float64)
    base[14:30, 18:26] = 200.0
    base[30:36, 10:40] = 120.0
    shifts = torch.randint(-3, 4, (12, 2), generator=generator)
    frames = torch.stack([torch.roll(base, tuple(s.tolist()), dims=(0, 1)) for s in shifts])
    images = torch.stack([frames, 0.5 * frames, frames], dim=1).round().to(torch.uint8)
    moved, estimated = register_images(images)
    relative = estimated - estimated[0]
    assert torch.allclose(relative, (shifts - shifts[0]).double(), atol=0.1)
    inner = moved[:, :, 6:-6, 6:-6].double()
    assert float((inner - inner[:1]).abs().max()) <= 2.0  # aligned (bilinear rounding only)
    assert torch.equal(moved[:, 0], moved[:, 2])  # every channel moved alike
