"""Fixtures of the integration tier: a tiny SimSiam run trained to its end, shared by the tests
that copy it (as finished, or as an interrupted run leaves it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from fastap_lab.runs import FINISHED
from fastap_lab.train import train
from tests.conftest import CONF_DIR, TINY
from tests.integration.test_bad_input_matrix import QUIET


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, cache_dir) -> Path:
    """A tiny SimSiam run trained to its end (1 epoch): it carries the FINISHED marker."""
    from hydra import compose, initialize_config_dir

    run = tmp_path_factory.mktemp("finished") / "run"
    overrides = [f"paths.output_dir={run}", f"paths.cache_dir={cache_dir}", *TINY, *QUIET]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        train(compose("train", overrides=[*overrides, "+trainer.limit_train_batches=1"]))
    return run


def unfinished_copy(run: Path, target: Path, max_epochs: int = 2) -> Path:
    """``run`` as an interrupted run leaves it: checkpoint and metrics of 1 epoch, a config
    planning ``max_epochs``, no FINISHED marker (no Ctrl-C timing involved)."""
    link_copy(run, target)
    (target / FINISHED).unlink()
    config = yaml.safe_load((target / "config.yaml").read_text())
    config["trainer"]["max_epochs"] = max_epochs
    (target / "config.yaml").write_text(yaml.safe_dump(config))
    return target


def link_copy(source: Path, target: Path) -> Path:
    """A copy of a run folder whose checkpoints are hard links (tens of MB each): files are
    replaced by renames, never rewritten in place, so the original cannot change through it."""

    def copy(src, dst):
        return os.link(src, dst) if src.endswith(".ckpt") else shutil.copy2(src, dst)

    return Path(shutil.copytree(source, target, copy_function=copy))
