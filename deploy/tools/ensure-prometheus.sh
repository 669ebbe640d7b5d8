#!/usr/bin/env bash
# Make sure promtool is on PATH (the alert-rule, dashboard and `check metrics` tests run it,
# and the real-Prometheus e2e test runs the `prometheus` binary of the same package).
# Idempotent: does nothing when promtool is found; otherwise installs Debian's `prometheus`
# package with apt-get (as root, or through sudo -n). Prints promtool's path on its last line.
set -euo pipefail

find_promtool() {
  command -v promtool 2>/dev/null && return 0
  # Debian installs it in /usr/bin; a PATH without it (cron, minimal shells) still finds it.
  if [ -x /usr/bin/promtool ]; then
    echo /usr/bin/promtool
    return 0
  fi
  return 1
}

if path=$(find_promtool); then
  echo "$path"
  exit 0
fi

# The package recommends node-exporter, which the hub does not need (apt-install.sh
# installs no recommends).
bash "$(dirname "$0")/apt-install.sh" ensure-prometheus prometheus

if path=$(find_promtool); then
  echo "$path"
else
  echo "ensure-prometheus: apt-get finished but no promtool binary is on PATH" >&2
  exit 1
fi
