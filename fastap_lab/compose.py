"""Config composition from ``conf/`` outside an entry point's ``@hydra.main``.

The one place that composes a config from ``conf/`` outside an entry point's ``@hydra.main``
(evaluation after training, re-building a model from defaults, reports, benchmarks).

Inside a running Hydra app (``GlobalHydra`` initialised) ``compose`` uses that app's search
path; outside it, ``conf/`` of this checkout.
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_config(config_name: str, overrides: list[str] = ()) -> DictConfig:
    """``conf/<config_name>.yaml`` with ``overrides`` (Hydra syntax), inside or outside Hydra."""
    if GlobalHydra.instance().is_initialized():
        return compose(config_name, overrides=list(overrides))
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=list(overrides))
