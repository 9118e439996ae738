"""Shared fixtures: composed configs, a tiny phantom cache, and CLI runners."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

# A phantom small enough to generate and train on in seconds (mirrors conf/experiment/smoke.yaml).
TINY = [
    "data.phantom.num_frames=96",
    "data.phantom.image_size=32",
    "data.phantom.num_breath_holds=1",
    "data.phantom.hold_seconds=[4.0,5.0]",
    "data.image_size=32",
    "data.batch_size=16",
    "data.num_blocks=4",
    "data.split_gap=1.0",
    "model.projector_dim=32",
    "model.predictor_dim=8",
]


@pytest.fixture(autouse=True)
def _seeded_random_state():
    """Every test starts from the same torch / NumPy / random seeds, so a test that draws from
    the global generators sees the same numbers whatever ran before it (-k, --count, order)."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One phantom cache for the whole session (generation is deterministic)."""
    return tmp_path_factory.mktemp("phantom_cache")


@pytest.fixture
def make_cfg(tmp_path, cache_dir):
    """``make_cfg(overrides, config_name="train") -> DictConfig`` composed from conf/."""

    def _make(overrides: list[str] = (), config_name: str = "train") -> DictConfig:
        base = [f"paths.output_dir={tmp_path / 'run'}", f"paths.cache_dir={cache_dir}"]
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return compose(config_name, overrides=base + list(overrides))

    return _make


def run_cli(module: str, *args: str, cwd: Path, cache_dir: Path, timeout: int = 300):
    """Run ``python -m fastap_lab.<module> args`` as a user would; returns CompletedProcess."""
    env = {**os.environ, "FASTAP_LAB_CACHE": str(cache_dir), "WANDB_MODE": "offline"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", f"fastap_lab.{module}", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture
def cli(tmp_path, cache_dir):
    """``cli(module, *args)`` runs an entry point with ``tmp_path`` as the working directory."""
    return lambda module, *args, **kw: run_cli(
        module, *args, cwd=tmp_path, cache_dir=cache_dir, **kw
    )
