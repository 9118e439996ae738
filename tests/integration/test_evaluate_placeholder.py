"""The ``data`` placeholder of conf/evaluate.yaml, composed with every data group: it lets
``data.root=…`` be given without a group. Which settings an evaluation uses is unit-tested in
tests/unit/test_data_settings.py."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf


@pytest.mark.parametrize("chosen", [None, "frames", "video", "dicom", "nifti", "phantom"])
def test_evaluate_placeholder_composes_with_every_data_group(chosen, make_cfg):
    """The placeholder's keys all exist in the data groups (so it never adds a bogus argument)
    and a chosen group's values replace it; without a group, data.root=… composes."""
    train_data = OmegaConf.to_container(make_cfg([]).data)
    overrides = ["data.root=/x"] if chosen is None else [f"data={chosen}"]
    data = OmegaConf.to_container(make_cfg(overrides, config_name="evaluate").data)
    if chosen is None:
        assert set(data) <= set(train_data) and "_target_" not in data
        assert data["root"] == "/x" and all(v is None for k, v in data.items() if k != "root")
    else:
        group_data = OmegaConf.to_container(make_cfg([f"data={chosen}"]).data)
        assert data == group_data
