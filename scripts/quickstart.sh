#!/usr/bin/env bash
# Quick start: set everything up, then train a real ACE potential on a small EMT dataset through AiiDA.
set -euo pipefail
cd "$(dirname "$0")/.."
export AIIDA_PATH=${AIIDA_PATH:-$PWD/.aiida}
PROFILE=${AIIDA_PROFILE_NAME:-mlip-autopipe}
bash scripts/setup.sh
echo "== training (verdi run examples/train_emt.py)"
start=$(date +%s)
.venv/bin/verdi -p "$PROFILE" run examples/train_emt.py
echo "== quick start training took $(( $(date +%s) - start )) s"
