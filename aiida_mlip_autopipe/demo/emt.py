"""Small labelled datasets made with ASE's EMT calculator, for the quick start, tests and benchmarks."""

from __future__ import annotations

import numpy as np

__all__ = ('emt_structures',)

LATTICE = {'Cu': 3.61, 'Al': 4.05, 'Ni': 3.52, 'Ag': 4.09, 'Au': 4.08, 'Pd': 3.89, 'Pt': 3.92}


def emt_structures(
    count: int,
    elements: tuple[str, ...] = ('Cu', 'Al'),
    repeat: int = 1,
    rattle: float = 0.05,
    strain: float = 0.03,
    seed: int = 0,
) -> list:
    """Return ``count`` strained, rattled fcc cells labelled with EMT energy, forces and stress.

    Each structure is a cubic fcc cell (4 atoms, ``repeat``-fold in each direction) with a random composition
    over ``elements`` and a lattice constant interpolated from the pure elements. Labels sit on a
    ``SinglePointCalculator``, as DFT results read by ASE do.
    """
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    structures = []
    for _ in range(count):
        atoms = bulk(elements[0], 'fcc', a=1.0, cubic=True).repeat(repeat)
        symbols = rng.choice(elements, size=len(atoms))
        atoms.set_chemical_symbols(symbols)
        lattice = float(np.mean([LATTICE.get(symbol, 3.8) for symbol in symbols]))
        deformation = np.eye(3) + strain * rng.uniform(-1, 1, size=(3, 3))
        deformation = 0.5 * (deformation + deformation.T)
        atoms.set_cell(lattice * np.asarray(atoms.cell) @ deformation, scale_atoms=True)
        atoms.positions += rng.normal(0.0, rattle, size=atoms.positions.shape)
        atoms.calc = EMT()
        energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces, stress=stress)
        structures.append(atoms)
    return structures
