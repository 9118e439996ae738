"""The phantom's settings (unit tier): each invalid field is a ConfigError naming it, exact limits,
a stable cache key."""

from __future__ import annotations

import pytest

from fastap_lab.data.phantom import ensure_phantom
from fastap_lab.data.phantom_spec import PhantomSpec
from fastap_lab.errors import ConfigError


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"image_size": 8}, "image_size"),
        ({"num_frames": 5}, "num_frames"),
        ({"label_tolerance": 0.0}, "label_tolerance"),
        ({"hold_position": 1.5}, "hold_position"),
        ({"hold_seconds": (20.0, 200.0)}, "hold_seconds"),
        ({"num_frames": 100}, "num_breath_holds"),
        ({"noise": -0.1}, "noise"),
        ({"view": "sagittal"}, "view"),
        ({"nuisance_mode": "random"}, "nuisance_mode"),
        ({"drift_seconds": 0.0}, "drift_seconds"),
        ({"gamma_jitter": -0.1}, "gamma_jitter"),
        ({"target_contrast": "t1"}, "target_contrast"),
    ],
)
def test_invalid_spec_names_the_field(overrides, field):
    with pytest.raises(ConfigError, match=rf"data\.phantom\.{field}="):
        PhantomSpec(**overrides)


# (field, smallest invalid value, the valid value next to it); holds off so that short
# sequences are valid.
SPEC_LIMITS = [
    ("num_frames", 9, 10),
    ("image_size", 15, 16),
    ("seed", -1, 0),
    ("num_breath_holds", -1, 0),
    ("supersample", 0, 1),
    ("supersample", 9, 8),
    ("fps", 0.0, 1e-6),
    ("cardiac_hz", 0.0, 1e-6),
    ("hold_position", -1e-9, 0.0),
    ("hold_position", 1 + 1e-9, 1.0),
    ("label_tolerance", 0.0, 1e-9),
    ("label_tolerance", 1.0, 1 - 1e-9),
    ("shallow_breath_fraction", 1 + 1e-9, 1.0),
    ("breath_seconds", (0.49, 1.0), (0.5, 0.5)),
    ("breath_seconds", (3.0, 2.9), (3.0, 3.0)),
    ("hold_seconds", (0.0, 1.0), (1e-3, 1e-3)),
    ("hold_seconds", (2.0, 1.9), (2.0, 2.0)),
    ("noise", -1e-9, 0.0),
]


@pytest.mark.parametrize(("field", "invalid", "valid"), SPEC_LIMITS)
def test_spec_limits_are_exact(field, invalid, valid):
    no_holds = {"num_breath_holds": 0}
    assert getattr(PhantomSpec(**{**no_holds, field: valid}), field) == valid
    with pytest.raises(ConfigError, match=rf"data\.phantom\.{field}="):
        PhantomSpec(**{**no_holds, field: invalid})


def test_unknown_override_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="data.phantom.frames"):
        ensure_phantom(tmp_path, frames=10)


def test_cache_key_is_stable_and_parameter_sensitive():
    assert PhantomSpec().cache_key() == PhantomSpec().cache_key()
    assert len(PhantomSpec().cache_key()) == 12
    assert PhantomSpec(noise=0.05).cache_key() != PhantomSpec().cache_key()
