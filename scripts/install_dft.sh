#!/usr/bin/env bash
# Install what the real-DFT tests need: Debian's Quantum ESPRESSO (pw.x, ld1.x) and, in the plugin's environment,
# aiida-quantumespresso + aiida-pseudo (the `dft` extra). pw.x runs without MPI (as root, mpirun needs extra flags).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v pw.x >/dev/null 2>&1 || ! command -v ld1.x >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends quantum-espresso >/dev/null
fi
if ! .venv/bin/python -c "import aiida_quantumespresso, aiida_pseudo" 2>/dev/null; then
  .venv/bin/pip install -q -e ".[pace,tests,dev,dft]"
fi
echo "DFT tools: $(command -v pw.x) $(command -v ld1.x); aiida-quantumespresso $(.venv/bin/python -c 'import aiida_quantumespresso as q; print(q.__version__)')"
