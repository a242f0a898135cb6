"""ASE database and extxyz import: counts, row ids, selection, dedup, policies, refusals with nothing stored."""

import re
import sqlite3

import numpy as np
import pytest
from aiida import orm
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect
from ase.io import write

from aiida_mlip_autopipe.data.training_set import TrainingSetData
from aiida_mlip_autopipe.demo.emt import emt_structures
from aiida_mlip_autopipe.importers.ase_db import import_ase_db
from aiida_mlip_autopipe.importers.extxyz import import_extxyz
from aiida_mlip_autopipe.importers.source_file import DatasetImportError
from tests.helpers import ase_database, node_count


@pytest.fixture
def database(tmp_path):
    """An ASE database of 8 EMT structures, half of them tagged bulk, with energies below and above zero."""
    return ase_database(
        tmp_path / 'dft.db',
        emt_structures(8, seed=3),
        lambda index: {'config_type': 'bulk' if index % 2 == 0 else 'surface', 'index': index},
    )


def test_import_keeps_counts_row_ids_and_labels(aiida_profile, database):
    node = import_ase_db(database)
    assert isinstance(node, TrainingSetData) and node.is_stored
    info = node.base.attributes.get('import_info')
    assert info['read'] == info['imported'] == 8
    assert info['skipped_missing_forces'] == info['skipped_invalid'] == 0
    sha = info['sha256']
    with connect(database) as db:
        rows = list(db.select())
    assert node.get_sources() == [f'ase_db:{sha[:16]}:row={row.id}:uid={row.unique_id}' for row in rows]
    for row, atoms in zip(rows, node.get_atoms(), strict=True):
        assert atoms.get_potential_energy() == pytest.approx(row.energy)
        np.testing.assert_allclose(atoms.get_forces(), row.forces)
        np.testing.assert_allclose(atoms.get_stress(), row.stress)
    # the lineage reaches the exact file
    (source,) = [link.node for link in node.creator.base.links.get_incoming(node_class=orm.SinglefileData).all()]
    assert source.base.attributes.get('sha256') == sha and source.filename == 'dft.db'


def test_selection_and_dedup(aiida_profile, database):
    bulk = import_ase_db(database, selection='config_type=bulk')
    assert len(bulk) == 4
    assert [int(s.split('row=')[1].split(':')[0]) for s in bulk.get_sources()] == [1, 3, 5, 7]
    before = node_count()
    again = import_ase_db(database, selection='config_type=bulk')
    assert again.uuid == bulk.uuid and node_count() == before
    everything = import_ase_db(database)
    assert everything.uuid != bulk.uuid and len(everything) == 8
    # the database file itself is stored once
    assert (
        orm.QueryBuilder()
        .append(orm.SinglefileData, filters={'attributes.sha256': bulk.base.attributes.get('import_info')['sha256']})
        .count()
        == 1
    )
    mixed = import_ase_db(database, selection='config_type=bulk,index<4')
    assert len(mixed) == 2


def add_bad_rows(path):
    with connect(path) as db:
        no_forces = emt_structures(1, seed=9)[0]
        no_forces.calc = SinglePointCalculator(no_forces, energy=-1.0)
        db.write(no_forces, config_type='bad')
        nan = emt_structures(1, seed=10)[0]
        nan.calc = SinglePointCalculator(nan, energy=float('nan'), forces=np.zeros((4, 3)))
        db.write(nan, config_type='bad')
        db.write(Atoms(), config_type='bad', data={})


@pytest.mark.parametrize(
    ('options', 'message'),
    [
        ({}, 'has no forces'),
        ({'on_missing_forces': 'skip'}, 'row 10: it has no energy label'),
        ({'on_missing_forces': 'keep'}, 'row 10: it has no energy label'),
    ],
)
def test_refuse_policy_stores_nothing(aiida_profile, database, options, message):
    add_bad_rows(database)
    before = node_count()
    with pytest.raises(DatasetImportError, match=message):
        import_ase_db(database, **options)
    assert node_count() == before


def test_skip_and_keep_policies_are_counted(aiida_profile, database):
    add_bad_rows(database)
    skipped = import_ase_db(database, on_missing_forces='skip', on_invalid='skip')
    info = skipped.base.attributes.get('import_info')
    assert (info['read'], info['imported']) == (11, 8)
    assert (info['skipped_missing_forces'], info['skipped_invalid']) == (1, 2)
    assert info['skipped_ids'] == [9, 10, 11]
    kept = import_ase_db(database, on_missing_forces='keep', on_invalid='skip')
    assert len(kept) == 9 and kept.base.attributes.get('num_structures_without_forces') == 1


def make_non_ase_sqlite(path):
    connection = sqlite3.connect(path)
    connection.execute('CREATE TABLE measurements (value REAL)')
    connection.commit()
    connection.close()


@pytest.mark.parametrize(
    ('make', 'message'),
    [
        (lambda path: None, 'no such file'),
        (lambda path: path.write_bytes(b''), 'the file is empty'),
        (lambda path: path.write_bytes(b'SQLite format 3\x00' + b'\xff' * 300), 'corrupt SQLite file'),
        (lambda path: path.write_bytes(b'this is not a database at all'), 'neither an ASE SQLite'),
        (make_non_ase_sqlite, 'not an ASE database'),
        (lambda path: path.write_text('{"rows": []}'), 'not an ASE database'),
    ],
)
def test_bad_files_are_refused_before_anything_is_stored(aiida_profile, tmp_path, make, message):
    path = tmp_path / 'input.db'
    make(path)
    content = path.read_bytes() if path.exists() else None
    before = node_count()
    with pytest.raises(DatasetImportError, match=message):
        import_ase_db(path)
    assert node_count() == before
    assert (path.read_bytes() if path.exists() else None) == content  # the user's file is untouched


@pytest.mark.parametrize(
    ('selection', 'message'),
    [
        ('energy<<<0', "selection 'energy<<<0' is not an ASE query: ValueError"),
        # ASE reads 'energy<<0' as '' > 'energy' and '' < 0: it matched nothing, reported as "no structure to import"
        ('energy<<0', "selection 'energy<<0' is not an ASE query: '' is not a key"),
        ('energy=<0', "selection 'energy=<0' is not an ASE query: 'energy=' is not a key"),
        ('config_type=nothing', "no structure to import: the selection 'config_type=nothing' matches none of its 8"),
        # a misspelt key matched nothing without a word on why
        ('energyy<0,natoms>1', "matches none of its 8 rows; no row has the key(s) 'energyy' (misspelt?)"),
    ],
    ids=['three', 'two', 'swapped', 'no-match', 'misspelt-key'],
)
def test_bad_selection_is_refused_by_name(aiida_profile, database, selection, message):
    before = node_count()
    with pytest.raises(DatasetImportError, match=re.escape(message)):
        import_ase_db(database, selection=selection)
    assert node_count() == before


def test_valid_selections_still_select(aiida_profile, database):
    assert len(import_ase_db(database, selection='1<index<4')) == 2
    assert len(import_ase_db(database, selection='config_type=bulk,energy<1000')) == 4


def test_extxyz_non_numeric_energy_honours_on_invalid(aiida_profile, tmp_path):
    """``energy=abc`` in a comment line: refused naming the frame, or skipped and counted with on_invalid='skip'."""
    path = tmp_path / 'abc.extxyz'
    structures = emt_structures(3, seed=5)
    write(path, structures, format='extxyz')
    lines = path.read_text().splitlines()
    second_comment = 2 + len(structures[0]) + 1
    lines[second_comment] = re.sub(r'energy=\S+', 'energy=abc', lines[second_comment])
    path.write_text('\n'.join(lines) + '\n')
    before = node_count()
    with pytest.raises(DatasetImportError, match=r"frame 1: its energy 'abc' is not a number"):
        import_extxyz(path)
    assert node_count() == before
    node = import_extxyz(path, on_invalid='skip')
    assert len(node) == 2
    info = node.base.attributes.get('import_info')
    assert info['skipped_invalid'] == 1 and info['skipped_ids'] == [1]


def test_extxyz_import(aiida_profile, tmp_path):
    path = tmp_path / 'data.extxyz'
    structures = emt_structures(5, seed=4)
    write(path, structures, format='extxyz')
    node = import_extxyz(path)
    assert len(node) == 5
    sha = node.base.attributes.get('import_info')['sha256']
    assert node.get_sources()[4] == f'extxyz:{sha[:16]}:frame=4'
    np.testing.assert_allclose(node.get_atoms()[2].get_forces(), structures[2].get_forces())
    assert import_extxyz(path).uuid == node.uuid
    (tmp_path / 'bad.extxyz').write_text('3\nnot extxyz\nX 0 0\n')
    before = node_count()
    with pytest.raises(DatasetImportError, match='not a readable extxyz file'):
        import_extxyz(tmp_path / 'bad.extxyz')
    assert node_count() == before


def test_import_calcfunction_builds_the_data_from_its_inputs_alone(aiida_profile, tmp_path, database):
    """No state reaches the import calcfunction outside its inputs: rerun on the recorded inputs of an import (the
    stored file and the options), it rebuilds the same arrays and import_info."""
    from aiida_mlip_autopipe.importers.ase_db import ase_db_to_training_set
    from aiida_mlip_autopipe.importers.extxyz import extxyz_to_training_set

    path = tmp_path / 'data.extxyz'
    write(path, emt_structures(4, seed=7), format='extxyz')
    for node, calcfunction in (
        (import_extxyz(path), extxyz_to_training_set),
        (import_ase_db(database), ase_db_to_training_set),
    ):
        creator = node.creator
        rerun = calcfunction(**{label: creator.inputs[label] for label in creator.inputs})
        assert rerun.uuid != node.uuid and len(rerun) == len(node) > 0
        assert rerun.base.attributes.get('import_info') == node.base.attributes.get('import_info')
        assert rerun.content_hash == node.content_hash
        for name, array in node.get_arrays().items():
            np.testing.assert_array_equal(rerun.get_array(name), array)
