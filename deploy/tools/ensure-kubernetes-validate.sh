#!/usr/bin/env bash
# Make sure kubernetes-validate is in the virtual environment: it checks manifests
# against the Kubernetes OpenAPI schemas it bundles (no cluster, no download).
# Idempotent. Prints its path on its last line.
exec bash "$(dirname "$0")/pip-tool.sh" kubernetes-validate "kubernetes-validate==1.37.0"
