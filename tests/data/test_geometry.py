"""Geometry pacemaker cannot fit is refused when data comes in (from_atoms, from_arrays, ASE db import), naming
the structure or row and what is wrong, before anything is stored."""

import numpy as np
import pytest
from aiida import orm
from ase import Atoms
from ase.build import bulk

from aiida_mlip_autopipe.data.geometry import closest_pair, geometry_problem
from aiida_mlip_autopipe.data.training_set import TrainingSetData, TrainingSetError
from aiida_mlip_autopipe.demo.emt import emt_structures
from aiida_mlip_autopipe.importers.ase_db import import_ase_db
from aiida_mlip_autopipe.importers.source_file import DatasetImportError
from tests.helpers import ase_database, single_point


def duplicated_atom():
    atoms = bulk('Cu', 'fcc', a=3.61, cubic=True)
    return atoms + Atoms('Cu', positions=[atoms.positions[2]])  # a second atom on top of atom 2


@pytest.mark.parametrize(
    ('make', 'fragment'),
    [
        (duplicated_atom, 'atoms 2 and 4 are 0 Å apart'),
        (lambda: Atoms('Cu2', positions=[[0, 0, 0], [0.1, 0, 0]], cell=[5, 5, 5], pbc=True), '0.1 Å apart'),
        (lambda: Atoms('Cu', positions=[[0, 0, 0]], cell=[0.2, 5, 5], pbc=True), 'from its own periodic image'),
        (lambda: Atoms('Cu2', positions=[[0, 0, 0], [2, 0, 0]], cell=[5, 5, 20], pbc=[True, True, False]), 'mixed'),
        (lambda: Atoms('Cu2', positions=[[0, 0, 0], [2, 0, 0]], pbc=True), 'zero volume'),
    ],
)
def test_from_atoms_refuses_what_pacemaker_cannot_fit(aiida_profile, make, fragment):
    structures = [*emt_structures(2, seed=1), single_point(make())]
    with pytest.raises(TrainingSetError, match=r'structure 2 \(') as info:
        TrainingSetData.from_atoms(structures)
    assert fragment in str(info.value)


def test_periodic_images_count_across_the_cell_boundary():
    positions = np.array([[0.05, 1, 1], [4.9, 1, 1]])
    distance, first, second = closest_pair(positions, np.diag([5.0, 5.0, 5.0]), np.array([True] * 3), 0.3)
    assert distance == pytest.approx(0.15) and {first, second} == {0, 1}
    assert geometry_problem(positions, np.diag([5.0, 5.0, 5.0]), np.array([False] * 3)) is None  # not periodic


def test_large_structures_use_the_neighbour_list():
    atoms = bulk('Cu', 'fcc', a=3.61, cubic=True).repeat((5, 5, 5))  # 500 atoms
    assert geometry_problem(atoms.positions, atoms.cell[:], atoms.pbc) is None
    atoms.positions[123] = atoms.positions[7] + [0.05, 0, 0]
    assert 'are 0.05 Å apart' in geometry_problem(atoms.positions, atoms.cell[:], atoms.pbc)


def test_a_molecule_and_a_threshold_of_zero_pass(aiida_profile):
    molecule = single_point(Atoms('H2', positions=[[0, 0, 0], [0.74, 0, 0]]))
    assert len(TrainingSetData.from_atoms([molecule])) == 1
    close = single_point(Atoms('H2', positions=[[0, 0, 0], [0.2, 0, 0]]))
    assert len(TrainingSetData.from_atoms([close], min_distance=0.0)) == 1


def test_from_arrays_checks_geometry(aiida_profile):
    arrays = dict(TrainingSetData.from_atoms([single_point(duplicated_atom())], min_distance=0.0).get_arrays())
    with pytest.raises(TrainingSetError, match='structure 0: atoms 2 and 4 are 0 Å apart'):
        TrainingSetData.from_arrays(**arrays)


def test_import_names_the_row_and_skips_it_on_request(aiida_profile, tmp_path):
    path = ase_database(tmp_path / 'bad.db', [*emt_structures(3, seed=2), single_point(duplicated_atom())])
    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(DatasetImportError, match='row 4: atoms 2 and 4 are 0 Å apart'):
        import_ase_db(path)
    assert orm.QueryBuilder().append(orm.Node).count() == before
    imported = import_ase_db(path, on_invalid='skip')
    assert len(imported) == 3 and imported.base.attributes.get('import_info')['skipped_ids'] == [4]
