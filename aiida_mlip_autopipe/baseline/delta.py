"""Delta learning on a ZBL baseline: fit DFT minus ZBL, hand out ACE plus ZBL.

Pacemaker fits ``energy_corrected`` and ``forces``; it has no external baseline of its own (its ``repulsion: auto``
only adds a ZBL core inside the smallest neighbour distance after the fit, and must then be off). The calcfunction
:func:`subtract_zbl_baseline` makes the targets: energies, forces (and stress) minus the LAMMPS-compatible ZBL of
:mod:`aiida_mlip_autopipe.baseline.zbl`. Its parameters are an input node and an attribute of the result
(``zbl_baseline``), so the baseline is in the lineage; the parser copies it onto the potential (``delta_learning``),
and :func:`~aiida_mlip_autopipe.potentials.calculator.get_calculator` /
:func:`~aiida_mlip_autopipe.potentials.lammps.lammps_commands` never hand the potential out
without it.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mlip_autopipe.baseline.zbl import ZBLBaseline, zbl_energy_forces_stress
from aiida_mlip_autopipe.data.training_set import TrainingSetData
from aiida_mlip_autopipe.jobscripts import pacemaker_io

__all__ = ('baseline_of', 'subtract_zbl_baseline', 'zbl_arrays')

ATTRIBUTE = 'zbl_baseline'


def baseline_of(node: orm.Node) -> ZBLBaseline | None:
    """Return the ZBL baseline recorded on a training set or potential node, if any."""
    recorded = node.base.attributes.get(ATTRIBUTE, None) or node.base.attributes.get('delta_learning', None)
    if not recorded:
        return None
    return ZBLBaseline(recorded['inner'], recorded['outer'])


def zbl_arrays(training_set: TrainingSetData, baseline: ZBLBaseline) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the baseline's energies (S), forces (atoms x 3) and stress (S x 6) for every structure."""
    structures = pacemaker_io.build_atoms(training_set.get_arrays())
    energies, forces, stresses = np.zeros(len(structures)), [], np.zeros((len(structures), 6))
    for index, atoms in enumerate(structures):
        energies[index], structure_forces, stresses[index] = zbl_energy_forces_stress(atoms, baseline)
        forces.append(structure_forces)
    return energies, (np.concatenate(forces) if forces else np.zeros((0, 3))), stresses


@calcfunction
def subtract_zbl_baseline(training_set: TrainingSetData, baseline: orm.Dict) -> TrainingSetData:
    """Return the structures with DFT minus ZBL labels (the fitting targets of a delta-learned potential)."""
    if training_set.base.attributes.get(ATTRIBUTE, None):
        raise ValueError(f'TrainingSetData<{training_set.pk}> has already had a ZBL baseline subtracted')
    parameters = ZBLBaseline(baseline['inner'], baseline['outer'])
    arrays = dict(training_set.get_arrays())
    energies, forces, stresses = zbl_arrays(training_set, parameters)
    arrays['energy'] = arrays['energy'] - energies
    arrays['forces'] = arrays['forces'] - forces * np.repeat(arrays['has_forces'], arrays['natoms'])[:, None]
    if 'stress' in arrays:
        arrays['stress'] = arrays['stress'] - stresses * arrays['has_stress'][:, None]
    result = TrainingSetData(arrays=arrays)
    result.base.attributes.set(ATTRIBUTE, parameters.as_dict())
    return result
