"""The unit tier is this folder: every test collected here is marked ``unit`` and must stay quick.

``pytest tests/unit`` and ``pytest -m unit`` select the same tests (the marker is added here, not
in each file). The tier must run in under a minute on the shared 2-core CPU, so a test here may
not be marked ``slow``, and one whose call uses more than ``UNIT_CPU_BUDGET_S`` of CPU time fails
with a message saying to make it smaller or move it to ``tests/integration``. CPU time, not wall
time: other processes on the machine do not count against a test, only its own work does.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

UNIT_DIR = Path(__file__).resolve().parent
# Per test call, in CPU seconds of this process (torch / OpenMP threads included, so spinning
# threads count too); the heaviest unit test (test_surrogate's registration under jitter) used
# up to 7.7 s on the shared 2-core machine. A real training run or a subprocess-heavy test uses
# far more. Subprocesses a test starts (test_core_boundary) are not counted.
UNIT_CPU_BUDGET_S = 15.0


def _in_unit_tier(item: pytest.Item) -> bool:
    return UNIT_DIR in Path(item.path).resolve().parents


@pytest.hookimpl(tryfirst=True)  # before -m selects: `pytest -m unit` must see the marker
def pytest_collection_modifyitems(config, items):
    """Mark every test under tests/unit ``unit``; refuse one that is also marked ``slow``."""
    for item in items:
        if not _in_unit_tier(item):
            continue
        if item.get_closest_marker("slow") is not None:
            raise pytest.UsageError(
                f"{item.nodeid} is marked slow: the unit tier stays under a minute;"
                " move the test to tests/integration"
            )
        item.add_marker(pytest.mark.unit)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Fail a unit test whose call uses more than ``UNIT_CPU_BUDGET_S`` of CPU time."""
    if not _in_unit_tier(item):
        return (yield)
    start = time.process_time()
    result = yield
    used = time.process_time() - start
    if used > UNIT_CPU_BUDGET_S:
        pytest.fail(
            f"unit test used {used:.1f} s of CPU (budget {UNIT_CPU_BUDGET_S:.0f} s): make it"
            " smaller or move it to tests/integration",
            pytrace=False,
        )
    return result
