"""AiiDA plugin that trains ACE interatomic potentials with Pacemaker, with full provenance.

The layout follows the flow, one folder per layer: ``data`` (``TrainingSetData``, geometry checks, source strings);
``importers`` (ASE databases, extxyz) and ``collection`` (DFT results in the database: Quantum ESPRESSO's ``pw.x``)
make it; ``baseline`` (ZBL, delta learning) shapes the targets; ``calculations`` (pacemaker and its settings schema,
the exploration; ``calculations/files.py`` names the files of each job, ``templates/`` holds the ``input.yaml``
template) with ``parsers`` beside them (a parser imports the file names, never its calculation); ``potentials``
(calculator, LAMMPS, B-basis files, reference energies, lineage, accuracy, plots); ``validation`` (physics of a
potential); ``labellers`` (EMT, Quantum ESPRESSO); ``active_learning`` (the loop's settings, calibration and
lineage); ``workflows`` (restarts, training, active learning, validation; ``workflows/defaults.py`` the defaults of
their inputs, ``workflows/protocols`` the protocols); ``codes.py`` finds the interpreter beside a pacemaker code;
``trainer`` (the one-call façade and its ``TrainingConfig``), ``cli`` the command line, ``demo`` the EMT data of the
examples. Below the rest sit ``jobscripts`` (what runs on the compute node, in pacemaker's environment;
its ``pacemaker_io`` also defines the structures' array format that ``data`` stores), and the helpers of
``potentials`` that ``calculations`` and ``parsers`` use (``bbasis``, ``reference_energy``, ``accuracy``).
Workflows import calculations, never the reverse.

The public names below are imported lazily, so that ``import aiida_mlip_autopipe`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = '0.1.0'

_EXPORTS = {
    'LossWeights': 'aiida_mlip_autopipe.calculations.settings',
    'PacemakerSettings': 'aiida_mlip_autopipe.calculations.settings',
    'TrainingConfig': 'aiida_mlip_autopipe.trainer',
    'PacemakerTrainer': 'aiida_mlip_autopipe.trainer',
    'TrainingError': 'aiida_mlip_autopipe.trainer',
    'get_calculator': 'aiida_mlip_autopipe.potentials.calculator',
    'lammps_commands': 'aiida_mlip_autopipe.potentials.lammps',
}

__all__ = tuple(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
