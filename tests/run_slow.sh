#!/usr/bin/env bash
# The tests marked slow (setup.cfg): whole multi-stage commands (compare, pareto, the fault
# campaign, the CLI smoke runs), several simulated devices and processes, and the device
# benchmark's micro cases. About an hour on 2 cores with an empty compilation cache; the
# default run (`pytest -q tests`) leaves them out. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m pytest -q -n 2 --dist loadfile -m slow tests "$@"
