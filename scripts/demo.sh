#!/usr/bin/env bash
# One command from a fresh clone: set up .venv, run the quick FAIR Universe benchmark, show the report.
set -euo pipefail
. "$(dirname "$0")/_venv.sh" ""
cd "$ROOT"
jaxbench run fair_universe-v0 --quick --out runs/demo-fair_universe --resume "$@"
