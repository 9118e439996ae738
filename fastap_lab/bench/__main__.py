"""``python -m fastap_lab.bench NAME [ARGS...]`` runs ``fastap_lab.bench.NAME.main(ARGS)``."""

import importlib
import pkgutil
import sys

import fastap_lab.bench as bench_pkg


def available() -> list[str]:
    """The benchmark names: modules of :mod:`fastap_lab.bench` not starting with ``_``."""
    return sorted(
        m.name for m in pkgutil.iter_modules(bench_pkg.__path__) if not m.name.startswith("_")
    )


def main(argv: list[str]) -> int:
    """Run ``python -m fastap_lab.bench NAME [ARGS...]``; returns the exit code."""
    names = available()
    if not argv or argv[0] not in names:
        print(
            f"usage: python -m fastap_lab.bench NAME [ARGS...]; NAME is one of: {', '.join(names)}"
        )
        return 2
    module = importlib.import_module(f"fastap_lab.bench.{argv[0]}")
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
