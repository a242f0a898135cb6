"""Equation of state: energies at scaled volumes, fitted with ASE's ``EquationOfState`` (Birch-Murnaghan by
default): equilibrium volume and energy per atom, bulk modulus and its pressure derivative."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.eos import EquationOfState
from ase.units import GPa

from aiida_mlip_autopipe.validation.common import label_all

__all__ = ('UNITS', 'analyse', 'compute', 'structures')

UNITS = {'V0': 'Å^3/atom', 'E0': 'eV/atom', 'B0': 'GPa', 'Bp': ''}


def volume_factors(points: int = 7, volume_range: float = 0.1) -> np.ndarray:
    """Volume scale factors: ``points`` from ``1 - volume_range`` to ``1 + volume_range``."""
    return np.linspace(1.0 - volume_range, 1.0 + volume_range, points)


def structures(atoms: Atoms, points: int = 7, volume_range: float = 0.1, eos: str = 'birchmurnaghan') -> list[Atoms]:
    """``atoms`` with its cell (and positions) scaled to each volume factor."""
    scaled = []
    for factor in volume_factors(points, volume_range):
        copy = atoms.copy()
        copy.calc = None
        copy.set_cell(atoms.cell * factor ** (1.0 / 3.0), scale_atoms=True)
        scaled.append(copy)
    return scaled


def analyse(
    atoms: Atoms, labelled: Sequence[Atoms], points: int = 7, volume_range: float = 0.1, eos: str = 'birchmurnaghan'
) -> tuple[dict, dict]:
    """Fit the energy-volume points; per atom except ``B0`` (GPa) and ``Bp``. Points the equation cannot fit (no
    minimum, or one outside the volumes) give NaN and ``eos_failed`` (why), not an exception: that is a finding."""
    count = len(atoms)
    volumes = np.asarray([structure.get_volume() / count for structure in labelled])
    energies = np.asarray([structure.get_potential_energy() / count for structure in labelled])
    arrays = {'eos_volumes': volumes, 'eos_energies': energies}
    fit = EquationOfState(volumes, energies, eos=eos)
    nan = float('nan')
    try:
        v0, e0, b0 = fit.fit(warn=False)
    except (RuntimeError, ValueError) as exception:  # no minimum: a potential far from the physics
        return {'V0': nan, 'E0': nan, 'B0': nan, 'Bp': nan, 'eos_failed': ' '.join(str(exception).split())}, arrays
    if not volumes.min() <= v0 <= volumes.max():  # an extrapolated minimum says nothing about B0
        failed = (
            f'the fitted minimum V0={v0:.4g} Å^3/atom lies outside the volumes {volumes.min():.4g}-{volumes.max():.4g}'
        )
        return {'V0': nan, 'E0': nan, 'B0': nan, 'Bp': nan, 'eos_failed': failed}, arrays
    parameters = getattr(fit, 'eos_parameters', None)
    bp = float(parameters[2]) if parameters is not None and len(parameters) > 3 else float('nan')
    results = {'V0': float(v0), 'E0': float(e0), 'B0': float(b0 / GPa), 'Bp': bp}
    return results, arrays


def compute(atoms: Atoms, calc, **options) -> tuple[dict, dict]:
    """The equation of state of ``atoms`` with ``calc``."""
    return analyse(atoms, label_all(structures(atoms, **options), calc), **options)
