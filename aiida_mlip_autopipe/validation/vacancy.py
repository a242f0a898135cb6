"""Vacancy formation energy in a supercell: ``E_vac = E(N-1) - (N-1)/N E(N)``, unrelaxed (both cells as built)
and, with a calculator, relaxed (the atoms of the vacancy cell relaxed at fixed cell, BFGS)."""

from __future__ import annotations

from collections.abc import Sequence

from ase import Atoms

from aiida_mlip_autopipe.validation.common import label_all

__all__ = ('UNITS', 'analyse', 'compute', 'relaxed_energy', 'structures')

UNITS = {'E_vac': 'eV', 'E_vac_relaxed': 'eV'}


def structures(atoms: Atoms, supercell: Sequence[int] = (2, 2, 2), index: int = 0, **_) -> list[Atoms]:
    """The perfect supercell and the same with atom ``index`` removed."""
    perfect = atoms.repeat(tuple(supercell))
    perfect.calc = None
    defect = perfect.copy()
    del defect[index]
    return [perfect, defect]


def formation_energy(perfect_energy: float, defect_energy: float, count: int) -> float:
    """``E(N-1) - (N-1)/N E(N)`` for a perfect cell of ``count`` atoms."""
    return float(defect_energy - (count - 1) / count * perfect_energy)


def analyse(atoms: Atoms, labelled: Sequence[Atoms], **options) -> tuple[dict, dict]:
    """The unrelaxed formation energy from the two labelled cells."""
    perfect, defect = labelled
    energy = formation_energy(perfect.get_potential_energy(), defect.get_potential_energy(), len(perfect))
    return {'E_vac': energy}, {}


def relaxed_energy(atoms: Atoms, calc, fmax: float = 0.01, steps: int = 200) -> float:
    """The energy of ``atoms`` after relaxing its positions (fixed cell) with ``calc``."""
    from ase.optimize import BFGS

    atoms = atoms.copy()
    atoms.calc = calc
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps)
    return float(atoms.get_potential_energy())


def compute(
    atoms: Atoms, calc, supercell: Sequence[int] = (2, 2, 2), index: int = 0, fmax: float = 0.01, steps: int = 200
) -> tuple[dict, dict]:
    """Unrelaxed and relaxed vacancy formation energies with ``calc``."""
    perfect, defect = structures(atoms, supercell, index)
    results, arrays = analyse(atoms, label_all([perfect, defect], calc))
    perfect_energy = label_all([perfect], calc)[0].get_potential_energy()
    results['E_vac_relaxed'] = formation_energy(perfect_energy, relaxed_energy(defect, calc, fmax, steps), len(perfect))
    return results, arrays
