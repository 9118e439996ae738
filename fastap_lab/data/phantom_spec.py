"""Parameters of the breathing phantom (``data.phantom.*``): the spec, its checks, its cache key.

Every field changes the generated data; ``PhantomSpec()`` is the embedded default
(``conf/data/phantom.yaml``), the presets (``conf/data/phantom_*.yaml``) change a few fields.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np

from fastap_lab.data.phantom_render import TARGET_CONTRASTS
from fastap_lab.data.phantom_waveform import HOLD_RAMP_SECONDS
from fastap_lab.errors import ConfigError

GENERATOR_VERSION = "1"
VIEWS = ("coronal", "axial")
NUISANCE_MODES = ("classic", "independent", "drift")
TARGET_CONTRAST_CHOICES = ("none", *TARGET_CONTRASTS)
# Fields added after the first recorded runs: they enter the cache key (and phantom.json) only
# when changed, so the default phantom keeps its key and its bytes.
LATER_FIELDS = ("view", "nuisance_mode", "drift_seconds", "gamma_jitter", "target_contrast")


@dataclass(frozen=True)
class PhantomSpec:
    """Every parameter that changes the generated phantom (defaults: 600 frames, 64 px, 4 fps).

    Times are in seconds. ``diaphragm_travel`` is the full-range respiratory motion (displacement
    0 → 1) as a fraction of the image height: in plane for the diaphragm of the ``coronal``
    view, through the slice for the organs of the ``axial`` view. ``jitter_px`` bounds the
    per-frame translation. ``nuisance_mode``: ``classic`` (pose wobble, gain steps, slow bias),
    ``independent`` (every acquisition nuisance drawn anew each frame) or ``drift`` (each one a
    random walk with time scale ``drift_seconds``). ``gamma_jitter``: spread of the per-frame
    log gamma. ``target_contrast``: ``none``, or the contrast of a second sequence written to
    ``target/`` (and of the external queries).
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
    view: str = "coronal"
    nuisance_mode: str = "classic"
    drift_seconds: float = 8.0
    gamma_jitter: float = 0.0
    target_contrast: str = "none"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hold_seconds", tuple(float(v) for v in self.hold_seconds))
        object.__setattr__(self, "breath_seconds", tuple(float(v) for v in self.breath_seconds))
        _validate(self)

    @property
    def duration(self) -> float:
        """Length of the sequence in seconds."""
        return self.num_frames / self.fps

    def recorded_fields(self) -> dict:
        """The fields as written to phantom.json and hashed: LATER_FIELDS only when changed."""
        fields = dataclasses.asdict(self)
        for name in LATER_FIELDS:
            if fields[name] == PhantomSpec.__dataclass_fields__[name].default:
                del fields[name]
        return fields

    def cache_key(self) -> str:
        """12 hex chars of sha256 over the sorted JSON of ``recorded_fields`` and the version."""
        payload = {**self.recorded_fields(), "generator_version": GENERATOR_VERSION}
        text = json.dumps(payload, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _config_error(name: str, value: object, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"data.phantom.{name}={value}: {problem}; {fix}")


def _one_of(choices: tuple[str, ...]) -> tuple:
    return (lambda v: v in choices, f"must be one of {', '.join(choices)}",
            f"use e.g. {choices[0]}")  # fmt: skip


_NON_NEGATIVE = ("noise", "speckle", "jitter_px", "rotation_degrees", "gain_drift",
                 "bias_strength", "diaphragm_travel", "gamma_jitter")  # fmt: skip
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
    "drift_seconds": (lambda v: v > 0, "must be > 0", "use e.g. 8.0 (seconds)"),
    "view": _one_of(VIEWS),
    "nuisance_mode": _one_of(NUISANCE_MODES),
    "target_contrast": _one_of(TARGET_CONTRAST_CHOICES),
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


def spec_with(spec: PhantomSpec | None, overrides: dict) -> PhantomSpec:
    """``spec`` (default: ``PhantomSpec()``) with ``overrides``; unknown names: ConfigError."""
    known = {f.name for f in dataclasses.fields(PhantomSpec)}
    for name in overrides:
        if name not in known:
            raise ConfigError(f"data.phantom.{name}: unknown phantom parameter; "
                              f"use one of {', '.join(sorted(known))}")  # fmt: skip
    return dataclasses.replace(spec or PhantomSpec(), **overrides)
