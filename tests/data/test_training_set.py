"""TrainingSetData: ragged structures in one node, labels, queryable attributes, refusals."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_mlip_autopipe.data.training_set import TrainingSetData, TrainingSetError
from aiida_mlip_autopipe.demo.emt import emt_structures
from tests.helpers import single_point


def labelled(symbols='Cu2', energy=-1.0, forces=None, stress=None, calc=True):
    atoms = Atoms(symbols, positions=np.arange(len(Atoms(symbols)))[:, None] * np.ones(3), cell=[4, 4, 4], pbc=True)
    if forces is None:
        forces = np.full((len(atoms), 3), 0.1)
    if calc:
        single_point(atoms, energy, forces, stress)
    else:
        atoms.info['energy'] = energy
        atoms.arrays['forces'] = np.asarray(forces)
    return atoms


def test_round_trip_of_ragged_structures(aiida_profile):
    structures = [*emt_structures(3, repeat=1, seed=1), labelled('Ni3H', energy=-7.5), *emt_structures(2, repeat=2)]
    node = TrainingSetData.from_atoms(structures, sources=[f'src-{i}' for i in range(6)]).store()
    loaded = TrainingSetData.collection.get(pk=node.pk)
    assert len(loaded) == 6
    assert loaded.num_atoms == 3 * 4 + 4 + 2 * 32
    assert loaded.elements == ['Al', 'Cu', 'H', 'Ni']
    assert loaded.has_forces and loaded.has_stress is False
    assert loaded.get_sources()[3] == 'src-3'
    for original, restored in zip(structures, loaded.get_atoms(), strict=True):
        assert restored.get_chemical_symbols() == original.get_chemical_symbols()
        np.testing.assert_allclose(restored.positions, original.positions)
        np.testing.assert_allclose(restored.cell[:], original.cell[:])
        assert restored.get_potential_energy() == pytest.approx(original.get_potential_energy())
        np.testing.assert_allclose(restored.get_forces(), original.get_forces())


def test_summary_attributes_are_queryable(aiida_profile):
    from aiida.orm import QueryBuilder

    node = TrainingSetData.from_atoms([labelled('Cu2', energy=-2.0), labelled('Cu4', energy=-12.0)]).store()
    assert node.base.attributes.get('energy_per_atom_min') == -3.0
    assert node.base.attributes.get('energy_per_atom_max') == -1.0
    assert len(node.content_hash) == 64
    found = (
        QueryBuilder()
        .append(TrainingSetData, filters={'attributes.content_hash': node.content_hash, 'attributes.num_structures': 2})
        .all(flat=True)
    )
    assert [n.pk for n in found] == [node.pk]
    by_element = QueryBuilder().append(TrainingSetData, filters={'attributes.elements': {'contains': ['Cu']}})
    assert node.pk in [n.pk for n in by_element.all(flat=True)]


def test_labels_fall_back_to_info_and_arrays():
    node = TrainingSetData.from_atoms([labelled(energy=-3.0, calc=False)])
    atoms = node.get_atoms()[0]
    assert atoms.get_potential_energy() == -3.0
    np.testing.assert_allclose(atoms.get_forces(), 0.1)


def test_stress_is_kept_in_voigt_form():
    stress = np.array([[1.0, 0.6, 0.5], [0.6, 2.0, 0.4], [0.5, 0.4, 3.0]])
    node = TrainingSetData.from_atoms([labelled(stress=stress)])
    assert node.has_stress
    np.testing.assert_allclose(node.get_atoms()[0].get_stress(), [1, 2, 3, 0.4, 0.5, 0.6])


def test_missing_forces_are_recorded_not_invented():
    atoms = labelled()
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0)
    node = TrainingSetData.from_atoms([atoms, labelled()])
    assert node.has_forces is False
    assert node.base.attributes.get('num_structures_without_forces') == 1
    assert 'forces' not in node.get_atoms()[0].calc.results


@pytest.mark.parametrize(
    ('make', 'message'),
    [
        (lambda: [labelled(energy=float('nan'))], r'structure 0 \(Cu2\): its energy is nan'),
        (lambda: [labelled(), labelled(energy=float('inf'))], r'structure 1 \(Cu2\): its energy is inf'),
        (lambda: [labelled(forces=[[0, 0, np.nan], [0, 0, 0]])], r'structure 0 \(Cu2\): its forces contain NaN'),
        (
            lambda: [labelled(forces=np.zeros((3, 3)))],
            r'structure 0 \(Cu2\): forces have shape \(3, 3\), expected \(2, 3\)',
        ),
        (lambda: [labelled(calc=False, energy=None)], 'structure 0 \\(Cu2\\): it has no energy label'),
        (lambda: [Atoms()], 'it has no atoms'),
        # issue 20: a boolean is not 1 eV; a string names the structure instead of a bare float() error
        (lambda: [labelled(), labelled(calc=False, energy=True)], r'structure 1 \(Cu2\): its energy True is a boolean'),
        (lambda: [labelled(calc=False, energy='abc')], r"structure 0 \(Cu2\): its energy 'abc' is not a number"),
        (lambda: [labelled(calc=False, energy=[1.0, 2.0])], r'structure 0 \(Cu2\): its energy \[1.0, 2.0\] is not'),
        (lambda: [labelled(calc=False, forces=[['a', 0, 0], [0, 0, 0]])], r'structure 0 \(Cu2\): its forces are not'),
    ],
)
def test_bad_labels_are_refused(make, message):
    with pytest.raises(TrainingSetError, match=message):
        TrainingSetData.from_atoms(make())


def test_empty_structure_is_refused():
    empty = Atoms(cell=[3, 3, 3])
    empty.info['energy'] = 0.0
    with pytest.raises(TrainingSetError, match='it has no atoms'):
        TrainingSetData.from_atoms([empty])


def test_select_and_concatenate_keep_labels_and_sources():
    first = TrainingSetData.from_atoms(
        [labelled('Cu2', energy=-i, forces=np.full((2, 3), i)) for i in range(4)], sources=list('abcd')
    )
    second = TrainingSetData.from_atoms([labelled('Ni3H', stress=np.ones(6))], sources=['e'])
    merged = TrainingSetData.concatenate([first, second])
    assert merged.get_sources() == list('abcde')
    assert merged.base.attributes.get('has_stress') is False  # only one structure has stress
    picked = merged.select([4, 1])
    assert picked.get_sources() == ['e', 'b']
    assert picked.get_atoms()[0].get_chemical_formula() == 'HNi3'
    assert picked.get_atoms()[1].get_potential_energy() == -1
    np.testing.assert_allclose(picked.get_atoms()[1].get_forces(), first.get_atoms()[1].get_forces())


def test_content_hash_depends_on_content():
    a = TrainingSetData.from_atoms([labelled(energy=-1.0)])
    b = TrainingSetData.from_atoms([labelled(energy=-1.0)])
    c = TrainingSetData.from_atoms([labelled(energy=-1.1)])
    assert a.content_hash == b.content_hash != c.content_hash
