"""Elastic constants from stress-strain: the cell strained by +-``strain`` along each of the six Voigt components
(clamped ions, at the structure as given), the stress fitted linearly. The full 6x6 tensor in GPa; for a cubic
crystal the cubic averages C11, C12, C44, for any other the 21 components C11 ... C66 of the symmetrised tensor (a
cubic average of a hexagonal tensor would be a number of no crystal), each with the Voigt bulk modulus B_elastic."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.units import GPa

from aiida_mlip_autopipe.validation.common import label_all

__all__ = ('COMPONENTS', 'UNITS', 'analyse', 'compute', 'is_cubic', 'strain_matrix', 'structures')

#: the 21 independent components (Voigt indices 1..6), in the order of the table
COMPONENTS = tuple(f'C{i + 1}{j + 1}' for i in range(6) for j in range(i, 6))

UNITS = {**{name: 'GPa' for name in COMPONENTS}, 'B_elastic': 'GPa'}

#: the (i, j) Cartesian components of the Voigt indices 0..5 (xx, yy, zz, yz, xz, xy), ASE's stress order
VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def magnitudes(strain: float = 0.01, points: int = 4) -> np.ndarray:
    """The strains applied along each Voigt component: ``points`` (even) from ``-strain`` to ``strain``, no zero."""
    half = np.linspace(strain / (points // 2), strain, points // 2)
    return np.concatenate([-half[::-1], half])


def strain_matrix(component: int, magnitude: float) -> np.ndarray:
    """The symmetric strain tensor of a Voigt (engineering) strain ``magnitude`` along ``component``."""
    tensor = np.zeros((3, 3))
    i, j = VOIGT[component]
    value = magnitude if i == j else magnitude / 2.0
    tensor[i, j] = tensor[j, i] = value
    return tensor


def structures(atoms: Atoms, strain: float = 0.01, points: int = 4) -> list[Atoms]:
    """``atoms`` deformed by each strain (component-major order)."""
    strained = []
    for component in range(6):
        for magnitude in magnitudes(strain, points):
            copy = atoms.copy()
            copy.calc = None
            deformation = np.eye(3) + strain_matrix(component, magnitude)
            copy.set_cell(np.asarray(atoms.cell) @ deformation.T, scale_atoms=True)
            strained.append(copy)
    return strained


def is_cubic(atoms: Atoms, symprec: float = 1e-3) -> bool:
    """Whether ``atoms`` is a cubic crystal (space group 195-230) whose cube axes are the Cartesian axes (the strains
    and stresses are Cartesian): only then are C11, C12, C44 (averaged over the equivalent components) its elastic
    constants. A primitive fcc cell of ASE qualifies; a rotated crystal does not."""
    import spglib

    cell = (np.asarray(atoms.cell).tolist(), atoms.get_scaled_positions().tolist(), atoms.numbers.tolist())
    dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
    if dataset is None or not 195 <= dataset.number <= 230:
        return False
    rotation = np.abs(np.asarray(dataset.std_rotation_matrix))
    return bool(np.allclose(rotation, np.round(rotation), atol=1e-3))


def analyse(atoms: Atoms, labelled: Sequence[Atoms], strain: float = 0.01, points: int = 4) -> tuple[dict, dict]:
    """``C[i, j] = d stress_i / d strain_j`` (GPa) from the labelled stresses; cubic averages as results."""
    steps = magnitudes(strain, points)
    stresses = np.asarray([structure.get_stress(voigt=True) for structure in labelled]).reshape(6, len(steps), 6)
    tensor = np.zeros((6, 6))
    for component in range(6):
        tensor[:, component] = np.polyfit(steps, stresses[component], 1)[0] / GPa
    symmetric = 0.5 * (tensor + tensor.T)
    bulk = float((np.trace(symmetric[:3, :3]) + 2.0 * (symmetric[0, 1] + symmetric[0, 2] + symmetric[1, 2])) / 9.0)
    if not is_cubic(atoms):
        results = {name: float(symmetric[int(name[1]) - 1, int(name[2]) - 1]) for name in COMPONENTS}
        return {**results, 'B_elastic': bulk}, {'elastic_tensor': tensor}
    c11 = float(np.mean(np.diag(tensor)[:3]))
    c12 = float(np.mean([tensor[0, 1], tensor[1, 0], tensor[0, 2], tensor[2, 0], tensor[1, 2], tensor[2, 1]]))
    c44 = float(np.mean(np.diag(tensor)[3:]))
    results = {'C11': c11, 'C12': c12, 'C44': c44, 'B_elastic': (c11 + 2.0 * c12) / 3.0}
    return results, {'elastic_tensor': tensor}


def compute(atoms: Atoms, calc, **options) -> tuple[dict, dict]:
    """The elastic tensor of ``atoms`` with ``calc``."""
    return analyse(atoms, label_all(structures(atoms, **options), calc, stress=True), **options)
