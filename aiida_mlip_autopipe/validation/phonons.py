"""Phonons with phonopy (finite displacements, called directly): the band structure over the standard path of the
primitive cell (ASE's ``bandpath``), the density of states, the smallest frequency (imaginary modes are negative);
:func:`band_rmse` compares two band structures over the same path (THz)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from aiida_mlip_autopipe.validation.common import label_all

__all__ = ('UNITS', 'analyse', 'band_rmse', 'compute', 'phonopy_of', 'structures')

UNITS = {'min_frequency': 'THz', 'imaginary_modes': '', 'max_frequency': 'THz', 'phonon_rmse': 'THz'}


def phonopy_of(atoms: Atoms, supercell: Sequence[int] = (2, 2, 2), displacement: float = 0.01, **_):
    """A ``Phonopy`` object of ``atoms`` (its primitive cell found by phonopy) with the displacements generated."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unitcell = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(), cell=np.asarray(atoms.cell), scaled_positions=atoms.get_scaled_positions()
    )
    with warnings.catch_warnings():  # 'auto' is meant: the standard primitive cell, whatever cell was given
        warnings.simplefilter('ignore')
        phonon = Phonopy(unitcell, supercell_matrix=np.diag(list(supercell)), primitive_matrix='auto')
    phonon.generate_displacements(distance=displacement)
    return phonon


def structures(atoms: Atoms, supercell: Sequence[int] = (2, 2, 2), displacement: float = 0.01, **_) -> list[Atoms]:
    """The displaced supercells phonopy asks for."""
    phonon = phonopy_of(atoms, supercell, displacement)
    return [
        Atoms(symbols=cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True)
        for cell in phonon.supercells_with_displacements
    ]


def analyse(
    atoms: Atoms,
    labelled: Sequence[Atoms],
    supercell: Sequence[int] = (2, 2, 2),
    displacement: float = 0.01,
    npoints: int = 100,
    mesh: int = 12,
    imaginary_tolerance: float = 0.1,
) -> tuple[dict, dict]:
    """Force constants from the labelled forces; bands (THz) along the standard path and the total DOS.

    ``imaginary_modes`` counts the (q-point, band) frequencies below ``-imaginary_tolerance`` THz."""
    phonon = phonopy_of(atoms, supercell, displacement)
    phonon.forces = [structure.get_forces() for structure in labelled]
    phonon.produce_force_constants()
    primitive = Atoms(cell=phonon.primitive.cell, pbc=True)
    path = primitive.cell.bandpath(npoints=npoints)
    phonon.run_qpoints(path.kpts)
    frequencies = np.asarray(phonon.get_qpoints_dict()['frequencies'])
    axis, special, _ = path.get_linear_kpoint_axis()
    phonon.run_mesh([mesh] * 3, is_gamma_center=True)
    phonon.run_total_dos()
    dos = phonon.get_total_dos_dict()
    results = {
        'min_frequency': float(frequencies.min()),
        'max_frequency': float(frequencies.max()),
        'imaginary_modes': int(np.sum(frequencies < -imaginary_tolerance)),
        'band_path': path.path,
    }
    arrays = {
        'phonon_qpoints': np.asarray(path.kpts),
        'phonon_distance': np.asarray(axis),
        'phonon_special_distance': np.asarray(special),
        'phonon_frequencies': frequencies,
        'phonon_dos_frequencies': np.asarray(dos['frequency_points']),
        'phonon_dos': np.asarray(dos['total_dos']),
    }
    return results, arrays


def band_rmse(frequencies: np.ndarray, reference: np.ndarray) -> float:
    """Root mean square difference (THz) of two band structures on the same q-points, band by band (sorted)."""
    return float(np.sqrt(np.mean((np.sort(frequencies, axis=1) - np.sort(reference, axis=1)) ** 2)))


def compute(atoms: Atoms, calc, **options) -> tuple[dict, dict]:
    """The phonons of ``atoms`` with ``calc``."""
    keys = ('supercell', 'displacement')
    displaced = structures(atoms, **{key: options[key] for key in keys if key in options})
    return analyse(atoms, label_all(displaced, calc), **options)
