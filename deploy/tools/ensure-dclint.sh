#!/usr/bin/env bash
# Make sure dclint (the Docker Compose linter, which also ships the Compose Specification
# JSON schema) is installed, from the npm registry, in
# ${XDG_CACHE_HOME:-~/.cache}/passport-hub/npm/dclint-<version>.
# Idempotent: does nothing when that install exists. Needs Node.js and npm: installs
# Debian's nodejs and npm with apt-get (as root, or through sudo -n) where they are missing.
# dclint 3.x needs Node >= 20.19; an older Node (Debian 12 ships 18) gets dclint 2.2.2.
# Prints dclint's path on its last line.
set -euo pipefail

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  bash "$(dirname "$0")/apt-install.sh" ensure-dclint nodejs npm
fi

if node -e 'const [a, b] = process.versions.node.split(".").map(Number);
            process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  version=3.1.0
else
  version=2.2.2
fi

prefix="${XDG_CACHE_HOME:-$HOME/.cache}/passport-hub/npm/dclint-$version"
bin="$prefix/node_modules/.bin/dclint"
if [ ! -x "$bin" ]; then
  echo "ensure-dclint: installing dclint@$version (npm)..." >&2
  mkdir -p "$(dirname "$prefix")"
  # Installed aside, then moved in place: an interrupted install leaves nothing half-done.
  staging=$(mktemp -d "$prefix.XXXXXX")
  trap 'rm -rf "$staging"' EXIT
  npm install --prefix "$staging" --no-audit --no-fund --save-exact --loglevel=error \
    "dclint@$version" >&2
  rm -rf "$prefix"
  mv "$staging" "$prefix"
fi

if [ -x "$bin" ]; then
  echo "$bin"
else
  echo "ensure-dclint: npm finished but $bin is missing" >&2
  exit 1
fi
