"""AiiDA plugin that trains ACE interatomic potentials with Pacemaker, with full provenance.

The layout follows the flow: ``importers`` (ASE databases, extxyz, DFT calculations) make ``data``
(``TrainingSetData``); ``baseline`` (ZBL, delta learning) shapes the targets; ``workflows`` (training, restarts,
protocols) run ``calculations`` (pacemaker) whose output ``parsers`` read; ``potentials`` holds what one does with
the result (calculator, LAMMPS, lineage, plots); ``config`` and ``trainer`` are the settings and the one-call
façade, ``cli`` the command line, ``demo`` the EMT data of the examples.

The public names below are imported lazily, so that ``import aiida_mlip_autopipe`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = '0.1.0'

_EXPORTS = {
    'LossWeights': 'aiida_mlip_autopipe.config',
    'PacemakerSettings': 'aiida_mlip_autopipe.config',
    'TrainingConfig': 'aiida_mlip_autopipe.config',
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
