#!/usr/bin/env bash
# Mutation testing of the cores (see TESTING.md): mutmut mutates losses/fastap.py,
# retrieval/ordering.py, retrieval/metrics.py and data/splits.py ([tool.mutmut] in
# pyproject.toml) and runs, for each mutant, the fast tests that call the mutated function.
#
#   experiments/mutation.sh                                   # every mutant (long: ~1100)
#   experiments/mutation.sh "fastap_lab.data.splits*"         # one module
#   experiments/mutation.sh --fresh "fastap_lab.retrieval.ordering*"   # forget earlier results
#
# Results are cached in mutants/ (git-ignored); `mutmut results` lists them and
# `mutmut show <mutant>` prints a mutant's diff.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--fresh" ]]; then
    rm -rf mutants
    shift
fi
# mutmut forks one child per mutant from a process that already imported torch; a forked
# OpenMP thread pool can deadlock (seen as spurious timeouts), so torch runs single-threaded.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
unset PYTHONPATH  # the tests must import the mutated copy under mutants/, not the checkout
PYTHON="${PYTHON:-.venv/bin/python}"
nice -n 10 "$PYTHON" -m mutmut run --max-children "${MUTMUT_CHILDREN:-2}" "$@"
"$PYTHON" -m mutmut results
