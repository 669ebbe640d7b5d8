#!/usr/bin/env bash
# Shared by the ensure-*.sh scripts of tools that Debian packages:
# `apt-install.sh WHO PACKAGE...` installs the packages with apt-get, as root or through
# sudo -n (never asking for a password), without their recommended extras. WHO names the
# calling script in messages. Exits non-zero, saying why, when it cannot.
set -euo pipefail

if [ "$#" -lt 2 ]; then
  echo "usage: apt-install.sh WHO PACKAGE..." >&2
  exit 2
fi
who=$1
shift

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo -n)
else
  echo "$who: $* missing and neither root nor sudo is available" >&2
  exit 1
fi

echo "$who: installing Debian's $* (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq >/dev/null
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
