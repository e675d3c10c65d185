#!/usr/bin/env bash
# One command from a fresh clone: set up .venv, run the quick FAIR Universe benchmark, show the report.
set -euo pipefail
. "$(dirname "$0")/_venv.sh" ""
cd "$ROOT"
# One run directory per code version: a rerun at the same commit resumes (and recomputes nothing);
# after an update, --resume would be refused (the fingerprint records the commit), so a new one starts.
version="$(git rev-parse --short HEAD 2>/dev/null || echo local)"
jaxbench run fair_universe-v0 --quick --out "runs/demo-fair_universe-$version" --resume "$@"
