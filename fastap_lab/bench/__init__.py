"""Benchmarks, each a module with ``main(argv)`` that prints side-by-side ratios.

Benchmarks: each module ``fastap_lab.bench.<name>`` has ``main(argv)`` and prints ratios
measured side by side in one run. Run with ``python -m fastap_lab.bench <name> [args]``.
"""
