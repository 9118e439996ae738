"""Embedded default dataset: a procedural, deterministic breathing phantom.

A coronal view of the upper abdomen (body outline, liver under a moving diaphragm dome, lungs,
beating heart, static spine) follows an irregular respiratory displacement ``d(t)`` in [0, 1]
(0 = end-exhale, 1 = deep inspiration) with a few breath holds at ``hold_position``. Frames
carry the nuisances of real sequences (heartbeat, speckle, noise, gain steps and drift, a
drifting bias field, in-plane jitter), so raw pixels are a weak cue of the breathing phase while
the diaphragm position still shows it. Frames are labelled 1 where
``|d - hold_position| <= label_tolerance``. Two external queries show the hold position and
end-exhale under a domain shift (other contrast, blur, bias, field of view).

``write_phantom`` writes the frames format (``frames/*.png``, ``labels.csv``, ``queries/``,
``queries.csv``) plus ``phantom.json``; ``ensure_phantom`` caches it under a key of the spec.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from fastap_lab.data.phantom_render import (
    MAIN_CONTRAST,
    QUERY_CONTRAST,
    FrameState,
    add_speckle_and_noise,
    bias_field,
    box_blur,
    make_anatomy,
    render_scene,
    to_uint8,
)
from fastap_lab.data.phantom_waveform import (
    HOLD_RAMP_SECONDS,
    nuisance_tracks,
    respiratory_waveform,
)
from fastap_lab.errors import ConfigError

GENERATOR_VERSION = "1"
LABELS_HEADER = "frame,label,time,video,displacement"
QUERY_NAMES = ("invivo.png", "invivo_exhale.png")


@dataclass(frozen=True)
class PhantomSpec:
    """Every parameter that changes the generated phantom (defaults: 600 frames, 64 px, 4 fps).

    Times are in seconds; ``diaphragm_travel`` is the full-range diaphragm motion as a fraction
    of the image height; ``jitter_px`` bounds the per-frame translation.
    """

    num_frames: int = 600
    image_size: int = 64
    fps: float = 4.0
    seed: int = 0
    num_breath_holds: int = 4
    hold_seconds: tuple[float, float] = (6.0, 10.0)
    hold_position: float = 0.75
    label_tolerance: float = 0.1
    breath_seconds: tuple[float, float] = (3.5, 6.0)
    shallow_breath_fraction: float = 0.5
    diaphragm_travel: float = 0.15
    cardiac_hz: float = 1.15
    noise: float = 0.03
    speckle: float = 0.2
    jitter_px: float = 1.5
    rotation_degrees: float = 1.5
    gain_drift: float = 0.15
    bias_strength: float = 0.35
    supersample: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "hold_seconds", tuple(float(v) for v in self.hold_seconds))
        object.__setattr__(self, "breath_seconds", tuple(float(v) for v in self.breath_seconds))
        _validate(self)

    @property
    def duration(self) -> float:
        """Length of the sequence in seconds."""
        return self.num_frames / self.fps

    def cache_key(self) -> str:
        """12 hex chars of sha256 over the sorted JSON of the fields and GENERATOR_VERSION."""
        payload = {**dataclasses.asdict(self), "generator_version": GENERATOR_VERSION}
        text = json.dumps(payload, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _config_error(name: str, value: object, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"data.phantom.{name}={value}: {problem}; {fix}")


_NON_NEGATIVE = ("noise", "speckle", "jitter_px", "rotation_degrees", "gain_drift",
                 "bias_strength", "diaphragm_travel")  # fmt: skip
_RULES = {  # field: (accepts the value, problem, fix)
    "num_frames": (lambda v: v >= 10, "must be >= 10", "use e.g. 600"),
    "image_size": (lambda v: v >= 16, "must be >= 16", "use e.g. 64 (32 to 256 work well)"),
    "seed": (lambda v: v >= 0, "must be >= 0", "use a non-negative integer"),
    "num_breath_holds": (lambda v: v >= 0, "must be >= 0", "use e.g. 4"),
    "supersample": (lambda v: 1 <= v <= 8, "must be in [1, 8]", "use e.g. 2"),
    "fps": (lambda v: v > 0, "must be > 0", "use e.g. 4.0"),
    "cardiac_hz": (lambda v: v > 0, "must be > 0", "use e.g. 1.15"),
    "hold_position": (lambda v: 0 <= v <= 1, "must be in [0, 1]", "use e.g. 0.75"),
    "label_tolerance": (lambda v: 0 < v < 1, "must be in (0, 1)", "use e.g. 0.1"),
    "shallow_breath_fraction": (lambda v: 0 <= v <= 1, "must be in [0, 1]", "use e.g. 0.5"),
    "breath_seconds": (lambda v: 0.5 <= v[0] <= v[1], "needs 0.5 <= shortest <= longest",
                       "use e.g. [3.5, 6.0]"),
    "hold_seconds": (lambda v: 0 < v[0] <= v[1], "needs 0 < shortest <= longest",
                     "use e.g. [6.0, 10.0]"),
    **{name: (lambda v: v >= 0, "must be >= 0", "use 0 to disable it") for name in _NON_NEGATIVE},
}  # fmt: skip


def _validate(spec: PhantomSpec) -> None:
    """Raises ConfigError naming the first out-of-range field and how to fix it."""
    for name, (accepts, problem, fix) in _RULES.items():
        value = getattr(spec, name)
        if not accepts(value):
            shown = list(value) if isinstance(value, tuple) else value
            raise _config_error(name, shown, problem, fix)
    _validate_holds(spec)


def _validate_holds(spec: PhantomSpec) -> None:
    """The holds, with their ramps, must leave >= 20 % of the sequence to free breathing."""
    block = spec.hold_seconds[1] + HOLD_RAMP_SECONDS
    if spec.num_breath_holds and block > spec.duration:
        raise _config_error("hold_seconds", list(spec.hold_seconds),
                            f"a hold (+{HOLD_RAMP_SECONDS} s of ramps) is longer than the "
                            f"{spec.duration:g} s sequence (num_frames / fps)",
                            "use shorter holds or more data.phantom.num_frames")  # fmt: skip
    needed = spec.num_breath_holds * block / 0.8  # keep >= 20 % free breathing
    if needed > spec.duration:
        raise _config_error("num_breath_holds", spec.num_breath_holds,
                            f"the holds need {needed:g} s but the sequence lasts "
                            f"{spec.duration:g} s", "use fewer holds, shorter "
                            f"data.phantom.hold_seconds or data.phantom.num_frames >= "
                            f"{int(np.ceil(needed * spec.fps))}")  # fmt: skip


@dataclass
class PhantomSequence:
    """A generated phantom: frames uint8 [N, H, W], displacement float64 [N] in [0, 1],
    labels int64 [N], times float64 [N] (seconds), queries {file name: (uint8 [H, W], label)},
    breath_holds [(start, end)] in seconds."""

    frames: np.ndarray
    displacement: np.ndarray
    labels: np.ndarray
    times: np.ndarray
    queries: dict[str, tuple[np.ndarray, int]]
    breath_holds: list[tuple[float, float]] = field(default_factory=list)


def _streams(spec: PhantomSpec) -> dict[str, np.random.Generator]:
    """Independent generators per concern, so e.g. more noise never changes the anatomy."""
    names = ("waveform", "anatomy", "nuisance", "query")
    seeds = np.random.SeedSequence(spec.seed).spawn(len(names))
    return {name: np.random.default_rng(seed) for name, seed in zip(names, seeds, strict=True)}


def _scene(spec: PhantomSpec, anatomy, contrast, state: FrameState) -> np.ndarray:
    travel = 2.0 * spec.diaphragm_travel  # normalised coordinates span 2 units
    return render_scene(anatomy, contrast, state, spec.image_size, spec.supersample, travel)


def render_frame(spec: PhantomSpec, displacement: float, nuisance: bool = False) -> np.ndarray:
    """One frame (uint8 [H, W]) of this spec's anatomy at ``displacement``.

    ``nuisance=False`` gives the clean render (no heartbeat, pose, shading or noise); True adds
    one deterministic draw of the sequence's nuisances.
    """
    streams = _streams(spec)
    anatomy = make_anatomy(streams["anatomy"])
    if not nuisance:
        return to_uint8(_scene(spec, anatomy, MAIN_CONTRAST, FrameState(float(displacement))))
    tracks = nuisance_tracks(spec, np.zeros(1), streams["nuisance"])
    return _noisy_frame(spec, anatomy, tracks, 0, float(displacement), streams["nuisance"])


def _noisy_frame(spec, anatomy, tracks, index, displacement, rng) -> np.ndarray:
    state = FrameState(
        displacement=displacement,
        cardiac=float(tracks.cardiac[index]),
        shift=(float(tracks.shift[index, 0]), float(tracks.shift[index, 1])),
        rotation=float(tracks.rotation[index]),
    )
    image = _scene(spec, anatomy, MAIN_CONTRAST, state)
    image = image * tracks.gain[index] * bias_field(spec.image_size, tracks.bias[index])
    return to_uint8(add_speckle_and_noise(image, rng, spec.speckle, spec.noise))


def _render_queries(spec: PhantomSpec, anatomy, rng) -> dict[str, tuple[np.ndarray, int]]:
    """Hold position (label 1) and end-exhale (label 0) under one domain shift."""
    shading = bias_field(spec.image_size, np.array([0.3, -0.25, 0.2, 0.15, -0.1]))
    queries = {}
    for name, displacement, label in zip(
        QUERY_NAMES, (spec.hold_position, 0.0), (1, 0), strict=True
    ):
        state = FrameState(displacement, cardiac=0.4, shift=(0.04, -0.03), rotation=0.02,
                           zoom=1.08)  # fmt: skip
        image = box_blur(_scene(spec, anatomy, QUERY_CONTRAST, state)) * shading
        noisy = add_speckle_and_noise(image, rng, 0.7 * spec.speckle, spec.noise)
        queries[name] = (to_uint8(noisy), label)
    return queries


def labels_within_tolerance(
    displacement: np.ndarray, hold_position: float, tolerance: float
) -> np.ndarray:
    """int64 [N]: 1 where |displacement − hold_position| <= tolerance (the boundary counts)."""
    return (np.abs(displacement - hold_position) <= tolerance).astype(np.int64)


def render_phantom(spec: PhantomSpec) -> PhantomSequence:
    """Generates the whole sequence in memory (deterministic in ``spec``)."""
    streams = _streams(spec)
    times = np.arange(spec.num_frames, dtype=np.float64) / spec.fps
    displacement, holds = respiratory_waveform(spec, times, streams["waveform"])
    anatomy = make_anatomy(streams["anatomy"])
    tracks = nuisance_tracks(spec, times, streams["nuisance"])
    frames = np.stack([
        _noisy_frame(spec, anatomy, tracks, i, d, streams["nuisance"])
        for i, d in enumerate(displacement)
    ])  # fmt: skip
    labels = labels_within_tolerance(displacement, spec.hold_position, spec.label_tolerance)
    queries = _render_queries(spec, anatomy, streams["query"])
    return PhantomSequence(frames, displacement, labels, times, queries, holds)


def summarize(sequence: PhantomSequence) -> dict:
    """JSON-ready summary: frame and positive counts, positive fraction, breath-hold ranges (s)."""
    return {
        "num_frames": int(len(sequence.frames)),
        "num_positives": int(sequence.labels.sum()),
        "positive_fraction": round(float(sequence.labels.mean()), 4),
        "num_breath_holds": len(sequence.breath_holds),
        "breath_holds_s": [[round(s, 3), round(e, 3)] for s, e in sequence.breath_holds],
    }


def _save_png(image: np.ndarray, path: Path) -> None:
    """8-bit gray PNG without metadata, so equal pixels give equal bytes."""
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(path, format="PNG")


def write_phantom(sequence: PhantomSequence, spec: PhantomSpec, root: Path) -> None:
    """Writes the frames format under ``root``; ``phantom.json`` last (marks it complete)."""
    root = Path(root)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    (root / "queries").mkdir(exist_ok=True)
    rows = [LABELS_HEADER]
    for index, frame in enumerate(sequence.frames):
        name = f"frame_{index:05d}.png"
        _save_png(frame, root / "frames" / name)
        rows.append(f"{name},{sequence.labels[index]},{sequence.times[index]:.4f},phantom,"
                    f"{sequence.displacement[index]:.6f}")  # fmt: skip
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    query_rows = ["query,label"]
    for name, (image, label) in sequence.queries.items():
        _save_png(image, root / "queries" / name)
        query_rows.append(f"{name},{label}")
    (root / "queries.csv").write_text("\n".join(query_rows) + "\n", encoding="utf-8")
    meta = {"spec": dataclasses.asdict(spec), "generator_version": GENERATOR_VERSION,
            "cache_key": spec.cache_key(), "summary": summarize(sequence)}  # fmt: skip
    (root / "phantom.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _spec_with(spec: PhantomSpec | None, overrides: dict) -> PhantomSpec:
    known = {f.name for f in dataclasses.fields(PhantomSpec)}
    for name in overrides:
        if name not in known:
            raise ConfigError(f"data.phantom.{name}: unknown phantom parameter; "
                              f"use one of {', '.join(sorted(known))}")  # fmt: skip
    return dataclasses.replace(spec or PhantomSpec(), **overrides)


def ensure_phantom(cache_dir: str | Path, spec: PhantomSpec | None = None, **overrides) -> Path:
    """Path of the phantom folder of ``spec`` (with ``overrides``), generated on first use.

    Generation goes to a temporary sibling renamed into place, so a crash leaves no
    half-written folder under the final name and two processes at once both end up with one
    complete copy. A folder is trusted only if its ``phantom.json`` (written last) exists.
    """
    spec = _spec_with(spec, overrides)
    cache_dir = Path(cache_dir)
    final = cache_dir / f"phantom-{spec.cache_key()}"
    if (final / "phantom.json").is_file():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".tmp-phantom-"))
    try:
        write_phantom(render_phantom(spec), spec, staging)
        _move_into_place(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # no-op once renamed
    return final


def _move_into_place(staging: Path, final: Path) -> None:
    """Renames ``staging`` to ``final``, replacing an untrusted ``final`` but never a trusted one."""
    for _ in range(3):
        try:
            os.rename(staging, final)
            return
        except OSError:
            if (final / "phantom.json").is_file():
                return  # another process finished first; the caller deletes ``staging``
            stale = final.with_name(f".stale-{final.name}-{os.getpid()}-{staging.name}")
            with contextlib.suppress(FileNotFoundError):  # someone else moved it away
                os.rename(final, stale)
            shutil.rmtree(stale, ignore_errors=True)
    os.rename(staging, final)


def main(argv: list[str] | None = None) -> int:
    """CLI: write a phantom folder to --out and print its summary (exit 2 on a bad value)."""
    parser = argparse.ArgumentParser(prog="python -m fastap_lab.data.phantom")
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    parser.add_argument("--num-frames", type=int, default=PhantomSpec.num_frames)
    parser.add_argument("--image-size", type=int, default=PhantomSpec.image_size)
    parser.add_argument("--seed", type=int, default=PhantomSpec.seed)
    parser.add_argument("--num-breath-holds", type=int, default=PhantomSpec.num_breath_holds)
    args = parser.parse_args(argv)
    try:
        spec = PhantomSpec(num_frames=args.num_frames, image_size=args.image_size,
                           seed=args.seed, num_breath_holds=args.num_breath_holds)  # fmt: skip
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sequence = render_phantom(spec)
    write_phantom(sequence, spec, args.out)
    print(json.dumps({"out": str(args.out), "cache_key": spec.cache_key(),
                      **summarize(sequence)}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
