#!/usr/bin/env bash
# The tests marked slow (setup.cfg): whole multi-stage commands (compare, pareto, the fault
# campaign, the CLI smoke runs), several simulated devices and processes, and the device
# benchmark's micro cases; minutes each with an empty compilation cache. The default run
# (`pytest -q tests`) leaves them out. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m pytest -q -m slow tests "$@"
