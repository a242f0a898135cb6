#!/usr/bin/env bash
# Install pacemaker (python-ace 0.4.0rc1 + TensorFlow CPU backend) in its OWN virtual environment.
# Usage: scripts/install_pacemaker_env.sh [VENV_DIR]   (default: .venv-pacemaker)
# Facts (see docs/installation.md): PyPI has python-ace 0.4.0rc1 only (--pre); numpy must be <2.4;
# tensorpotential and tf_keras go in with --no-deps, otherwise CUDA / full tensorflow wheels are pulled.
set -euo pipefail
VENV=${1:-.venv-pacemaker}
PY=${PYTHON:-python3}
if [ -x "$VENV/bin/pacemaker" ] && [ -x "$VENV/bin/pace_yaml2yace" ] && "$VENV/bin/python" -c "import tensorpotential, tensorflow, pyace" 2>/dev/null; then
  echo "pacemaker environment already present: $VENV"; exit 0
fi
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "tensorflow-cpu==2.20.0" "numpy==2.3.5"
"$VENV/bin/pip" install -q --no-deps "tf_keras==2.20.1" "tensorpotential==0.6.2.1"
"$VENV/bin/pip" install -q --pre "python-ace==0.4.0rc1" "numpy==2.3.5" "pandas>=2,<3" \
    ase matscipy sympy pyyaml tqdm questionary scikit-learn
"$VENV/bin/python" -c "import tensorpotential, tensorflow, pyace; print('pacemaker env OK, pyace', pyace.__file__)"
