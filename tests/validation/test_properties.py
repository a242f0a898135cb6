"""The property functions on ASE's EMT for Cu (known values), and a potential equal to its reference."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from aiida_mlip_autopipe.validation import elastic, eos, md, phonons, vacancy
from aiida_mlip_autopipe.validation.common import label_all, same_geometry
from aiida_mlip_autopipe.validation.compare import potential_side, reference_side, table
from aiida_mlip_autopipe.validation.options import parse_properties


@pytest.fixture
def copper():
    return bulk('Cu', 'fcc', a=3.6, cubic=True)


def test_eos_emt_copper(copper):
    """EMT Cu: B0 about 134 GPa, a0 about 3.59 Å (V0 = a0^3 / 4)."""
    results, arrays = eos.compute(copper, EMT())
    assert results['B0'] == pytest.approx(134.1, abs=1.5)
    assert (4 * results['V0']) ** (1 / 3) == pytest.approx(3.59, abs=0.01)
    assert 3.5 < results['Bp'] < 5.5
    assert arrays['eos_volumes'].shape == (7,)


def test_elastic_emt_copper(copper):
    """EMT Cu (clamped ions, at a = 3.6 Å): C11 > C12, C44 positive, cubic symmetry of the full tensor."""
    results, arrays = elastic.compute(copper, EMT())
    tensor = arrays['elastic_tensor']
    assert results['C11'] == pytest.approx(166.7, abs=3)
    assert results['C12'] == pytest.approx(111.3, abs=3)
    assert results['C44'] == pytest.approx(86.5, abs=3)
    assert np.allclose(tensor, tensor.T, atol=1.0)
    assert abs(tensor[0, 3]) < 1.0 and abs(tensor[3, 4]) < 1.0


def test_elastic_strain_voigt():
    """Engineering shear strain: the tensor component is half of it."""
    assert elastic.strain_matrix(5, 0.02)[0, 1] == pytest.approx(0.01)
    assert elastic.strain_matrix(0, 0.02)[0, 0] == pytest.approx(0.02)


def test_vacancy_emt_copper(copper):
    """EMT Cu: about 1.24 eV unrelaxed; relaxation lowers it."""
    results, _ = vacancy.compute(copper, EMT())
    assert results['E_vac'] == pytest.approx(1.245, abs=0.02)
    assert results['E_vac_relaxed'] < results['E_vac']


def test_phonons_emt_copper(copper):
    """EMT Cu: stable (no imaginary mode), highest frequency about 8 THz, standard fcc path."""
    results, arrays = phonons.compute(copper, EMT())
    assert results['imaginary_modes'] == 0
    assert results['max_frequency'] == pytest.approx(8.0, abs=0.5)
    assert results['band_path'].startswith('GX')
    assert arrays['phonon_frequencies'].shape == (100, 3)


def test_phonons_rmse():
    bands = np.array([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
    assert phonons.band_rmse(bands, bands) == 0.0
    assert phonons.band_rmse(bands + 0.5, bands) == pytest.approx(0.5)


def test_md_emt_copper(copper):
    """Cu at 300 K with EMT: no atom lost, the trace recorded; an impossible distance limit counts every run."""
    results, arrays = md.compute(copper, EMT(), temperatures=[300.0], steps=40)
    assert results['lost_atoms'] == 0
    assert results['min_distance'] > 2.0
    assert arrays['md_0'].shape == (9, 6)
    strict, _ = md.compute(copper, EMT(), temperatures=[300.0, 600.0], steps=10, min_distance=3.0)
    assert strict['lost_atoms'] == 2


def test_same_potential_as_reference_zero_error(copper):
    """Potential = EMT against reference = EMT labels: every error is zero, the phonon RMSE too."""
    properties = parse_properties({'eos': {}, 'elastic': {}, 'vacancy': {}, 'phonons': {'npoints': 20}})
    potential, potential_arrays = potential_side(copper, EMT(), properties)
    from aiida_mlip_autopipe.validation.compare import reference_structures

    labelled = [
        atoms
        for name, wanted in reference_structures(copper, properties).items()
        for atoms in label_all(wanted, EMT(), stress=name == 'elastic')
    ]
    reference, reference_arrays = reference_side(copper, properties, labelled[::-1], EMT())  # found by geometry
    rows = table(potential, reference, potential_arrays, reference_arrays)
    for quantity in ('V0', 'B0', 'C11', 'C12', 'C44', 'E_vac', 'E_vac_relaxed', 'phonon_rmse'):
        assert rows[quantity]['error'] == pytest.approx(0.0, abs=1e-9), quantity
    assert rows['B0']['unit'] == 'GPa'


def test_same_geometry_modulo_lattice(copper):
    shifted = copper.copy()
    shifted.positions[0] += copper.cell[0]
    assert same_geometry(copper, shifted)
    moved = copper.copy()
    moved.positions[1, 0] += 0.01
    assert not same_geometry(copper, moved)


@pytest.mark.parametrize(
    ('properties', 'message'),
    [
        ({'eos': {}, 'bandgap': {}}, "properties: unknown 'bandgap'"),
        ({}, 'properties: give at least one'),
        ({'eos': {'points': 3}}, 'properties.eos.points: Input should be greater than or equal to 5'),
        ({'md': {'temperature': 300}}, 'properties.md.temperature: Extra inputs are not permitted'),
        ({'elastic': {'points': 3}}, 'properties.elastic.points: Input should be a multiple of 2'),
    ],
)
def test_parse_properties_refuses(properties, message):
    with pytest.raises(ValueError, match='^' + message.replace('(', r'\(').replace(')', r'\)')):
        parse_properties(properties)


def test_parse_properties_defaults():
    parsed = parse_properties({'md': True, 'eos': {'points': 9}})
    assert list(parsed) == ['eos', 'md']
    assert parsed['eos']['points'] == 9 and parsed['md']['temperatures'] == [300.0]


def test_eos_without_minimum_is_a_finding(copper):
    """A potential whose energy falls with volume throughout (a bad fit): NaN and the reason, no exception."""
    from ase.calculators.singlepoint import SinglePointCalculator

    labelled = []
    for atoms in eos.structures(copper):
        atoms.calc = SinglePointCalculator(atoms, energy=-0.5 * atoms.get_volume())
        labelled.append(atoms)
    results, arrays = eos.analyse(copper, labelled)
    assert np.isnan(results['B0']) and results['eos_failed']
    assert len(arrays['eos_energies']) == 7
