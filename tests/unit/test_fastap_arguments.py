"""fastap_loss's arguments: each bad one is a one-line ConfigError naming the field, the
smallest valid ones are accepted, the documented defaults hold."""

import pytest
import torch

from fastap_lab.errors import ConfigError
from fastap_lab.losses.fastap import fastap_loss
from fastap_lab.losses.histograms import split_histograms
from fastap_lab.losses.positives import (
    positives_from_labels,
)
from tests.unit.fastap_reference import random_case


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"bins": 0}, "loss.bins=0"),
        ({"bins": 2.5}, "loss.bins=2.5"),
        ({"kernel": "box"}, "loss.kernel='box'"),
        ({"kernel": "gaussian"}, "loss.sigma=None"),
        ({"kernel": "gaussian", "sigma": -0.1}, "loss.sigma=-0.1"),
        ({"kernel": "gaussian", "sigma": 0}, "loss.sigma=0"),
        ({"kernel": "gaussian", "sigma": 0.0}, "loss.sigma=0.0"),
        ({"kernel": "gaussian", "sigma": float("nan")}, "loss.sigma=nan"),
        ({"sigma": 0.05}, "loss.sigma=0.05"),
        ({"positives": torch.ones(4, 5, dtype=torch.bool)}, "positives"),
        ({"positives": torch.ones(4, 4)}, "positives"),
        ({"embeddings": torch.randn(4)}, "embeddings"),
        ({"anchors": torch.tensor([0.5])}, "anchors"),
    ],
)
def test_bad_arguments_raise_config_error_naming_the_field(kwargs, field):
    arguments = {"embeddings": torch.randn(4, 3), "positives": torch.eye(4, dtype=torch.bool)}
    arguments.update(kwargs)
    embeddings, positives = arguments.pop("embeddings"), arguments.pop("positives")
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as raised:
        fastap_loss(embeddings, positives, **arguments)
    assert "\n" not in str(raised.value)  # one line on the command line


@pytest.mark.parametrize(
    "kwargs", [{"bins": 1}, {"kernel": "gaussian", "sigma": 1e-6}, {"anchors": torch.tensor([3])}]
)
def test_smallest_valid_arguments_are_accepted(kwargs):
    embeddings = torch.eye(4, 3, dtype=torch.float64) + 0.1
    positives = positives_from_labels(torch.tensor([0, 0, 1, 1]))
    assert torch.isfinite(fastap_loss(embeddings, positives, **kwargs))


def test_loss_messages_say_what_to_do():
    x, eye = torch.randn(4, 3), torch.eye(4, dtype=torch.bool)
    expected = {
        "loss.sigma=0.05: only the gaussian kernel uses sigma (the triangular one is one bin"
        " wide, 4 / loss.bins); set loss.sigma=null or loss.kernel=gaussian": {"sigma": 0.05},
        "loss.sigma=0: loss.kernel=gaussian needs a bandwidth > 0 in squared-distance units"
        " (range [0, 4]), e.g. loss.sigma=0.05 with loss.bins=100": {
            "kernel": "gaussian",
            "sigma": 0,
        },
        "loss.kernel='box': must be one of triangular, gaussian": {"kernel": "box"},
    }
    for message, kwargs in expected.items():
        with pytest.raises(ConfigError) as raised:
            fastap_loss(x, eye, **kwargs)
        assert str(raised.value) == message


def test_documented_defaults():
    # fastap_loss and split_histograms default to the paper's triangular kernel with 10 bins.
    embeddings, labels = random_case(20, 4, num_labels=3, seed=9)
    positives = positives_from_labels(labels)
    torch.testing.assert_close(
        fastap_loss(embeddings, positives), fastap_loss(embeddings, positives, bins=10)
    )
    assert fastap_loss(embeddings, positives) != fastap_loss(embeddings, positives, bins=11)
    distances = torch.rand(3, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    mask = torch.ones(3, 8, dtype=torch.bool)
    torch.testing.assert_close(
        split_histograms(distances, mask, mask, 10),
        split_histograms(distances, mask, mask, 10, kernel="triangular"),
    )
