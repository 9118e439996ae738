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
from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def _tiny_overrides() -> list[str]:
    """conf/data/phantom_tiny.yaml (the one home of the tiny setting) as dotted overrides, in
    file order (the phantom fields first, then data.image_size, …), plus small SimSiam heads."""
    preset = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "data" / "phantom_tiny.yaml"))
    preset.pop("defaults")
    phantom = preset.pop("phantom")
    values = [f"data.phantom.{k}={v}".replace(" ", "") for k, v in phantom.items()]
    values += [f"data.{k}={v}" for k, v in preset.items()]
    return [*values, "model.projector_dim=32", "model.predictor_dim=8"]


# A phantom small enough to generate and train on in seconds (data=phantom_tiny, as
# +experiment=smoke uses it), as overrides that compose with any data / model choice.
TINY = _tiny_overrides()


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


def train_tiny_run(run_dir: Path, cache_dir: Path) -> Path:
    """A one-step SimSiam run on the tiny phantom (a real checkpoint in seconds), no post-train
    evaluation; returns ``run_dir``."""
    from fastap_lab.train import train

    overrides = [f"paths.output_dir={run_dir}", f"paths.cache_dir={cache_dir}", *TINY,
                 "trainer.max_epochs=1", "+trainer.limit_train_batches=1", "logger={}",
                 "eval_after_train=false"]  # fmt: skip
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    train(cfg)
    return run_dir


def run_cli(module: str, *args: str, cwd: Path, cache_dir: Path, timeout: int = 300):
    """Run ``python -m fastap_lab.<module> args`` as a user would; returns CompletedProcess."""
    env = {**os.environ, "FASTAP_LAB_CACHE": str(cache_dir), "WANDB_MODE": "offline"}
    # The checkout under test, whatever folder the command runs in (not another editable install).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CONF_DIR.parent), env.get("PYTHONPATH")]))
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
