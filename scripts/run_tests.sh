#!/usr/bin/env bash
# Run the test suite with the real pacemaker. The tests make their own temporary AiiDA profile; AIIDA_PATH
# points at a throw-away folder so that nothing touches your ~/.aiida or the quick start's profile.
# Extra arguments go to pytest. AIIDA_TEST_BROKER=core.zeromq|core.rabbitmq enables the daemon tests' broker.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_dft.sh  # pw.x / ld1.x and aiida-quantumespresso for the real-DFT tests (idempotent)
export AIIDA_PATH=${AIIDA_TEST_PATH:-$PWD/.aiida_test}
rm -rf "$AIIDA_PATH"; mkdir -p "$AIIDA_PATH"
export PATH="$PWD/.venv/bin:$PATH"  # the daemon runs `verdi` from the PATH
export PACEMAKER_EXECUTABLE=${PACEMAKER_EXECUTABLE:-$PWD/.venv-pacemaker/bin/pacemaker}
exec .venv/bin/python -m pytest -p no:cacheprovider --basetemp="$AIIDA_PATH/pytest" "$@" tests
