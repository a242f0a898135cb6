#!/usr/bin/env bash
# Build the documentation site (Sphinx + MyST) with warnings as errors into docs/_build/html.
# Needs the docs extra: .venv/bin/pip install -e ".[docs]" (scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
export AIIDA_PATH=${AIIDA_PATH:-$(mktemp -d)}  # the build uses an in-memory profile; nothing is written here
exec .venv/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html "$@"
