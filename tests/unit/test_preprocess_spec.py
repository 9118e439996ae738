"""The network-input preprocessing spec: what it records is what it applies."""

import pytest
import torch

from fastap_lab.data.preprocess import SCALE, PreprocessSpec, normalize_images
from fastap_lab.errors import DataError


def frames():
    return torch.arange(0, 256, dtype=torch.uint8).reshape(1, 1, 16, 16)


def test_default_scale_gives_the_floats_of_dividing_by_255():
    spec = PreprocessSpec(channels=1, image_size=16, mean=0.2, std=0.3)
    expected = (frames().float() / 255.0 - 0.2) / 0.3
    assert spec.scale == SCALE
    assert torch.equal(spec.prepare(frames()), expected)


def test_a_recorded_scale_is_applied():
    spec = PreprocessSpec(channels=1, image_size=16, mean=0.0, std=1.0, scale=1.0 / 1023.0)
    prepared = spec.prepare(frames())
    torch.testing.assert_close(prepared, frames().float() / 1023.0)
    assert not torch.equal(prepared, normalize_images(frames(), 0.0, 1.0))


def test_round_trip_through_a_dict_keeps_every_field():
    spec = PreprocessSpec(channels=3, image_size=64, mean=0.5, std=0.25, scale=0.5, register=True)
    assert PreprocessSpec.from_dict(spec.to_dict(), "gallery.json") == spec
    assert spec.differences(PreprocessSpec(3, 64, 0.5, 0.25)) == [
        f"scale 0.5 != {SCALE}",
        "register True != False",
    ]


def test_an_incomplete_spec_is_one_line_naming_the_file():
    with pytest.raises(DataError, match="preprocess.json: its preprocessing spec is incomplete"):
        PreprocessSpec.from_dict({"channels": 1, "image_size": 64}, "preprocess.json")
