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

bash "$(dirname "$0")/apt-install.sh" ensure-chromium chromium

if path=$(find_browser); then
  echo "$path"
else
  echo "ensure-chromium: apt-get finished but no chromium binary is on PATH" >&2
  exit 1
fi
