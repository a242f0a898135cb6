"""What the property modules share: labelling a list of structures with a calculator, finding a structure among
labelled ones."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

__all__ = ('PROPERTIES', 'find_labelled', 'label_all', 'same_geometry')

#: the properties, in the order they are computed and shown
PROPERTIES = ('eos', 'elastic', 'vacancy', 'phonons', 'md')


def label_all(structures: Sequence[Atoms], calc, stress: bool = False) -> list[Atoms]:
    """Copies of ``structures`` labelled by ``calc``: energy, forces (and stress) on a ``SinglePointCalculator``."""
    labelled = []
    for structure in structures:
        atoms = structure.copy()
        atoms.calc = calc
        labels = {'energy': atoms.get_potential_energy(), 'forces': atoms.get_forces()}
        if stress:
            labels['stress'] = atoms.get_stress()
        atoms.calc = SinglePointCalculator(atoms, **labels)
        labelled.append(atoms)
    return labelled


def same_geometry(first: Atoms, second: Atoms, tolerance: float = 1e-4) -> bool:
    """Whether two structures are the same calculation: same atoms in the same order, same cell, same positions
    (modulo lattice vectors) within ``tolerance`` Å."""
    if len(first) != len(second) or not np.array_equal(first.numbers, second.numbers):
        return False
    if not np.array_equal(first.pbc, second.pbc) or not np.allclose(first.cell, second.cell, atol=tolerance):
        return False
    delta = second.positions - first.positions
    if first.pbc.any():
        fractional = np.linalg.solve(np.asarray(first.cell).T, delta.T).T
        fractional[:, first.pbc] -= np.round(fractional[:, first.pbc])
        delta = fractional @ np.asarray(first.cell)
    return bool(np.all(np.abs(delta) < tolerance))


def find_labelled(atoms: Atoms, labelled: Sequence[Atoms]) -> int | None:
    """Index of ``atoms`` among ``labelled`` (:func:`same_geometry`), or ``None``."""
    for index, candidate in enumerate(labelled):
        if same_geometry(atoms, candidate):
            return index
    return None
