# Sourced by demo.sh and test.sh: creates .venv if missing and installs jaxbench into it.
# Usage: . scripts/_venv.sh EXTRAS   (EXTRAS e.g. "" or "[test]")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  echo "Creating $ROOT/.venv ..."
  "$PYTHON" -m venv "$ROOT/.venv"
  "$ROOT/.venv/bin/pip" install --quiet --upgrade pip
fi
STAMP="$ROOT/.venv/.jaxbench-installed$1"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ] || [ "$ROOT/setup.py" -nt "$STAMP" ]; then
  echo "Installing jaxbench$1 into .venv (first time: about a minute) ..."
  "$ROOT/.venv/bin/pip" install --quiet --disable-pip-version-check -e "$ROOT$1" 2>&1 | grep -v "^WARNING: Location" || true
  "$ROOT/.venv/bin/python" -c "import jaxbench" # fail loudly if the install did not work
  touch "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
