#!/usr/bin/env bash
# Make sure a headless Chromium is on PATH (the simulator report's browser test needs one).
# Idempotent: does nothing when chromium (or chromium-browser, google-chrome) is found;
# otherwise installs Debian's `chromium` with apt-get (as root, or through sudo).
# Prints the binary's path on its last line.
set -euo pipefail

find_browser() {
  local name
  for name in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$name" >/dev/null 2>&1; then
      command -v "$name"
      return 0
    fi
  done
  return 1
}

if path=$(find_browser); then
  echo "$path"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo -n)
else
  echo "ensure-chromium: chromium is missing and neither root nor sudo is available" >&2
  exit 1
fi

echo "ensure-chromium: installing Debian's chromium (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq >/dev/null
"${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null

if path=$(find_browser); then
  echo "$path"
else
  echo "ensure-chromium: apt-get finished but no chromium binary is on PATH" >&2
  exit 1
fi
