#!/usr/bin/env bash
# One command from a fresh clone: set up .venv with the test extras and run the test suite.
set -euo pipefail
. "$(dirname "$0")/_venv.sh" "[test,jets,nowcast]"
cd "$ROOT"
exec python -m pytest -n 2 --dist loadfile "$@"
