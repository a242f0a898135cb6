#!/usr/bin/env bash
# Run the test suite with the real pacemaker. The tests make their own temporary AiiDA profile; AIIDA_PATH
# points at a throw-away folder so that nothing touches your ~/.aiida or the quick start's profile.
# Extra arguments go to pytest; a test path among them replaces the default `tests`. AIIDA_TEST_BROKER=core.zeromq|core.rabbitmq picks the daemon tests' broker,
# AIIDA_TEST_STORAGE=core.sqlite_dos|core.psql_dos the storage (psql: scripts/start_postgres.sh first).
set -euo pipefail
cd "$(dirname "$0")/.."
# what the selection needs: the DFT programs for tests/dft, the cluster for tests/remote; the whole suite needs both,
# the fast tier (-m "not slow") neither, other test paths neither
NEED_DFT=0 NEED_CLUSTER=0 GIVEN=0 FAST=0 PREVIOUS=
for argument in "$@"; do
  case "$argument" in
    tests|./tests|tests/|./tests/) GIVEN=1 NEED_DFT=1 NEED_CLUSTER=1 ;;
    tests/dft*|./tests/dft*) GIVEN=1 NEED_DFT=1 ;;
    tests/remote*|./tests/remote*) GIVEN=1 NEED_CLUSTER=1 ;;
    tests/*|./tests/*) GIVEN=1 ;;
  esac
  if [ "$PREVIOUS" = -m ] && [ "$argument" = "not slow" ]; then FAST=1; fi
  PREVIOUS=$argument
done
if [ "$GIVEN" = 0 ]; then NEED_DFT=1 NEED_CLUSTER=1; fi
if [ "$FAST" = 1 ]; then NEED_DFT=0 NEED_CLUSTER=0; fi
if [ "$NEED_DFT" = 1 ]; then
  bash scripts/install_dft.sh  # pw.x / ld1.x and aiida-quantumespresso for the real-DFT tests (idempotent)
fi
if [ "$NEED_CLUSTER" = 1 ] && [ "$(id -u)" = 0 ]; then
  bash scripts/cluster/start.sh  # sshd + a second user with its own pacemaker + one-node Slurm (idempotent)
elif [ "$NEED_CLUSTER" = 1 ]; then
  echo "not root: no cluster for tests/remote (run scripts/cluster/start.sh as root); those tests will fail" >&2
fi
export AIIDA_PATH=${AIIDA_TEST_PATH:-$PWD/.aiida_test}
rm -rf "$AIIDA_PATH"; mkdir -p "$AIIDA_PATH"
export PATH="$PWD/.venv/bin:$PATH"  # the daemon runs `verdi` from the PATH
export PACEMAKER_EXECUTABLE=${PACEMAKER_EXECUTABLE:-$PWD/.venv-pacemaker/bin/pacemaker}
# `tests` only when no test path is given (GIVEN, above): `run_tests.sh tests/x.py::t` runs that one test,
# `-m "not slow"` the fast tier
PATHS=()
if [ "$GIVEN" = 0 ]; then PATHS=(tests); fi
# the whole suite runs on TEST_WORKERS pytest-xdist workers (default 2; a file's tests stay on one worker, so its module
# fixtures run once): while one worker waits on a daemon, Slurm or pw.x, the other fits. A test path, `-n N` or
# `-p no:xdist` given: as asked (one test runs in this process).
WORKERS=()
if [ ${#PATHS[@]} -gt 0 ] && [ "${TEST_WORKERS:-2}" -gt 1 ]; then
  WORKERS=(-n "${TEST_WORKERS:-2}" --dist loadfile)
  for argument in "$@"; do
    case "$argument" in -n|-n*|--numprocesses*|no:xdist|-pno:xdist) WORKERS=() ;; esac
  done
fi
PYTEST=(.venv/bin/python -m pytest -p no:cacheprovider --basetemp="$AIIDA_PATH/pytest" "${WORKERS[@]}" "$@" "${PATHS[@]}")
CLUSTER_HOME=$(sed -n 's/^CLUSTER_HOME=//p' .cluster/env 2>/dev/null || true)
if [ "$(id -u)" = 0 ] && [ -n "$CLUSTER_HOME" ]; then
  # the remote user's home (its pacemaker) is hidden from the tests: an empty tmpfs over it in a private mount
  # namespace, so what the remote tests do, they do through SSH; sshd and Slurm, outside, still see it
  exec unshare -m bash -c 'mount --make-rprivate / && mount -t tmpfs -o size=1m,mode=700 none "$0" && exec "$@"' \
    "$CLUSTER_HOME" "${PYTEST[@]}"
fi
exec "${PYTEST[@]}"
