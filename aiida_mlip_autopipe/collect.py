"""Collect labelled structures from DFT results already in the AiiDA database, with each source as an input link.

* :func:`collect_from_pw`: finished aiida-quantumespresso ``PwCalculation`` nodes. Energy from
  ``output_parameters['energy']`` (eV), forces (eV/Å) and stress from the last step of ``output_trajectory``.
  QE's stress is in GPa with the sign of QE's printed pressure (positive = compressed); it is converted to
  eV/Å³ with ASE's sign (``stress_ase = -stress_qe * ase.units.GPa``), as ASE's own QE reader does.
* :func:`collect_structures`: the generic form any DFT plugin maps onto: a ``StructureData``, the total energy
  (``Float``, eV), the forces (``ArrayData`` array ``forces``, eV/Å) and optionally the stress (``ArrayData``
  array ``stress``, 3x3 or Voigt, eV/Å³, ASE sign).

Each structure's ``source`` is ``aiida:<uuid>`` of the DFT calculation that created its energy (or of the
structure, when the energy has no creator).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mlip_autopipe.data.training_set import TrainingSetBuilder, TrainingSetData, TrainingSetError

__all__ = ('collect_from_pw', 'collect_pw_results', 'collect_structure_results', 'collect_structures')


def _source_of(node: orm.Data, fallback: orm.Node) -> str:
    creator = node.creator
    return f'aiida:{(creator or fallback).uuid}'


def _numbers(symbols: Iterable[str]) -> np.ndarray:
    from ase.data import atomic_numbers

    return np.asarray([atomic_numbers[symbol] for symbol in symbols], dtype=np.int32)


def _groups(sources: Mapping[str, orm.Data]) -> dict[str, dict[str, orm.Data]]:
    """Split flat ``<key>_<field>`` inputs into ``{key: {field: node}}``."""
    groups: dict[str, dict[str, orm.Data]] = {}
    for label, node in sources.items():
        key, _, field = label.rpartition('_')
        groups.setdefault(key, {})[field] = node
    return dict(sorted(groups.items(), key=lambda item: int(item[0][1:])))


@calcfunction
def collect_pw_results(**sources: orm.Data) -> TrainingSetData:
    """Build a ``TrainingSetData`` from PW outputs: per calculation ``s<i>_parameters``, ``s<i>_trajectory``
    and optionally ``s<i>_structure`` (the input structure, for its periodicity)."""
    from ase.units import GPa

    builder = TrainingSetBuilder()
    for key, nodes in _groups(sources).items():
        parameters, trajectory = nodes['parameters'], nodes['trajectory']
        units = parameters.get('energy_units', 'eV')
        if units != 'eV':
            raise TrainingSetError(f'{key}: energy in {units!r}, expected eV')
        arrays = trajectory.get_arraynames()
        forces = trajectory.get_array('forces')[-1] if 'forces' in arrays else None
        stress = -np.asarray(trajectory.get_array('stress')[-1]) * GPa if 'stress' in arrays else None
        pbc = nodes['structure'].pbc if 'structure' in nodes else (True, True, True)
        problem = builder.add(
            _numbers(trajectory.symbols),
            trajectory.get_array('positions')[-1],
            trajectory.get_array('cells')[-1],
            pbc,
            parameters.get('energy'),
            forces,
            stress,
            source=_source_of(parameters, trajectory),
        )
        if problem:
            raise TrainingSetError(f'{key} ({_source_of(parameters, trajectory)}): {problem}')
    return TrainingSetData(arrays=builder.arrays())


@calcfunction
def collect_structure_results(**sources: orm.Data) -> TrainingSetData:
    """Build a ``TrainingSetData`` from ``s<i>_structure``, ``s<i>_energy`` (eV), ``s<i>_forces`` (eV/Å) and
    optionally ``s<i>_stress`` (eV/Å³, ASE sign)."""
    builder = TrainingSetBuilder()
    for key, nodes in _groups(sources).items():
        structure = nodes['structure']
        atoms = structure.get_ase()
        forces = nodes['forces'].get_array('forces') if 'forces' in nodes else None
        stress = nodes['stress'].get_array('stress') if 'stress' in nodes else None
        problem = builder.add(
            atoms.numbers,
            atoms.positions,
            atoms.cell[:],
            atoms.pbc,
            nodes['energy'].value,
            forces,
            stress,
            source=_source_of(nodes['energy'], structure),
        )
        if problem:
            raise TrainingSetError(f'{key} ({_source_of(nodes["energy"], structure)}): {problem}')
    return TrainingSetData(arrays=builder.arrays())


def collect_from_pw(calculations: Iterable[orm.CalcJobNode]) -> TrainingSetData:
    """Collect finished ``PwCalculation`` nodes into one ``TrainingSetData`` (their outputs become its inputs)."""
    sources: dict[str, orm.Data] = {}
    for index, calculation in enumerate(calculations):
        if not calculation.is_finished_ok:
            raise TrainingSetError(f'{calculation.process_label}<{calculation.pk}> did not finish successfully')
        outputs = calculation.outputs
        missing = [name for name in ('output_parameters', 'output_trajectory') if name not in outputs]
        if missing:
            raise TrainingSetError(f'{calculation.process_label}<{calculation.pk}> has no {", ".join(missing)}')
        sources[f's{index}_parameters'] = outputs.output_parameters
        sources[f's{index}_trajectory'] = outputs.output_trajectory
        if 'structure' in calculation.inputs:
            sources[f's{index}_structure'] = calculation.inputs.structure
    if not sources:
        raise TrainingSetError('no calculations to collect')
    return collect_pw_results(**sources)


def collect_structures(entries: Iterable[Mapping[str, orm.Data]]) -> TrainingSetData:
    """Collect ``{'structure', 'energy', 'forces'[, 'stress']}`` node mappings into one ``TrainingSetData``."""
    sources: dict[str, orm.Data] = {}
    for index, entry in enumerate(entries):
        unknown = set(entry) - {'structure', 'energy', 'forces', 'stress'}
        if unknown or not {'structure', 'energy'} <= set(entry):
            raise TrainingSetError(f'entry {index}: give structure, energy, forces and optionally stress')
        for field, node in entry.items():
            sources[f's{index}_{field}'] = node
    if not sources:
        raise TrainingSetError('no structures to collect')
    return collect_structure_results(**sources)
