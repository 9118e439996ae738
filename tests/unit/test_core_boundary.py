"""The pure core imports neither Lightning nor Hydra (unit tier).

Importing every module of the core packages in a fresh interpreter must leave ``lightning`` and
``hydra`` out of ``sys.modules``: a user can call the losses, metrics, data readers, evaluation,
analysis, surrogate and gating functions from a notebook or another framework without them.
Rebuilding a model from a checkpoint is glue (:mod:`fastap_lab.embedders`), not core.
"""

from __future__ import annotations

import subprocess
import sys

CORE = ("losses", "models", "data", "retrieval", "evaluation", "analysis", "respiration", "gating")

SCRIPT = f"""
import importlib, pkgutil, sys
for package in {CORE!r}:
    module = importlib.import_module("fastap_lab." + package)
    for info in pkgutil.walk_packages(module.__path__, module.__name__ + "."):
        importlib.import_module(info.name)
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & {{"lightning", "hydra", "pytorch_lightning"}})
print(",".join(loaded) or "none")
"""


def test_core_packages_load_neither_lightning_nor_hydra():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none", f"the core loaded: {result.stdout.strip()}"


def test_the_check_sees_a_leak():
    # The same check on a glue module must report it, or the test above could not fail.
    leak = SCRIPT.replace(f"for package in {CORE!r}:", "for package in ('lit',):")
    result = subprocess.run(
        [sys.executable, "-c", leak], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "lightning" in result.stdout
