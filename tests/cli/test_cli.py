"""The ``mlip-autopipe`` command line (verdi-style): import, train, list, lineage, export, plot; one-line errors."""

import json

import pytest
import yaml
from aiida import orm
from ase.db import connect
from click.testing import CliRunner

from aiida_mlip_autopipe.cli import cli
from aiida_mlip_autopipe.demo.emt import emt_structures
from tests.helpers import ase_database, one_line


def test_import_and_refusal(aiida_profile, tmp_path):
    path = ase_database(tmp_path / 'cli.db', emt_structures(3, seed=8))
    result = CliRunner().invoke(cli, ['import', str(path)])
    assert result.exit_code == 0, result.output
    assert '3 structures' in result.output and '"imported": 3' in result.output
    result = CliRunner().invoke(cli, ['import', str(tmp_path / 'missing.db')])
    assert result.exit_code == 1 and 'no such file' in result.output
    assert one_line(result)


def test_extxyz_suffix_in_any_case(aiida_profile, tmp_path):
    from ase.io import write

    path = tmp_path / 'GOOD.XYZ'
    write(path, emt_structures(2, seed=9), format='extxyz')
    result = CliRunner().invoke(cli, ['import', str(path)])
    assert result.exit_code == 0, result.output
    assert '2 structures' in result.output


def test_list_and_lineage(tiny_fit):
    potential = tiny_fit.outputs.potential
    result = CliRunner().invoke(cli, ['list', '-e', 'Cu', '-e', 'Al', '--max-rmse-forces', '1e9'])
    assert result.exit_code == 0, result.output
    (row,) = [line.split() for line in result.output.splitlines()[2:] if line.split()[0] == str(potential.pk)]
    assert row[1] == 'Al-Cu' and float(row[3]) == pytest.approx(tiny_fit.outputs.metrics['rmse_forces_test'], abs=0.01)
    result = CliRunner().invoke(cli, ['list', '-e', 'Ni'])  # other tests of this worker may have stored Ni fits
    rows = [line.split() for line in result.output.splitlines()[2:] if line.split() and line.split()[0].isdigit()]
    assert result.exit_code == 0 and str(potential.pk) not in [row[0] for row in rows], result.output
    assert all('Ni' in row[1].split('-') for row in rows), result.output
    result = CliRunner().invoke(cli, ['list', '-e', 'Xe'])
    assert result.exit_code == 0 and 'no potential matches' in result.output, result.output
    result = CliRunner().invoke(cli, ['lineage', str(potential.pk)])
    assert result.exit_code == 0, result.output
    assert f'PacemakerCalculation<{tiny_fit.pk}>' in result.output and 'training set: 16 structures' in result.output


@pytest.mark.parametrize(
    ('arguments', 'expected'),
    [
        (['lineage', '999999'], 'no SinglefileData found with ID<999999>'),
        (['lineage', 'not-a-pk'], 'not-a-pk'),
        (['plot', '999999'], '999999'),
        (['export', '999999', '-o', 'x'], '999999'),
        (['train'], 'give either a CONFIG file or --protocol'),
        (['train', '--protocol', 'fast'], '--protocol needs -X/--code'),
    ],
)
def test_errors_are_one_line(aiida_profile, arguments, expected):
    result = CliRunner().invoke(cli, arguments)
    assert one_line(result) and expected in result.output, result.output


def test_wrong_node_types_and_files_are_one_line_errors(tiny_fit, tmp_path):
    training_set = tiny_fit.inputs.training_set
    result = CliRunner().invoke(cli, ['lineage', str(training_set.pk)])  # not a SinglefileData
    assert one_line(result) and 'no SinglefileData found' in result.output
    result = CliRunner().invoke(cli, ['lineage', str(tiny_fit.outputs.metrics.pk)])
    assert one_line(result)
    stray = orm.SinglefileData.from_string('x', filename='notes.txt').store()
    result = CliRunner().invoke(cli, ['lineage', str(stray.pk)])  # a file no calculation made
    assert one_line(result) and 'Critical:' in result.output, result.output
    afile = tmp_path / 'afile'
    afile.write_text('')
    result = CliRunner().invoke(cli, ['export', str(tiny_fit.outputs.potential.pk), '-o', str(afile)])
    assert one_line(result) and 'is not a directory' in result.output
    result = CliRunner().invoke(cli, ['plot', str(tiny_fit.pk), '-o', str(afile)])
    assert one_line(result) and 'is not a directory' in result.output
    result = CliRunner().invoke(cli, ['plot', str(training_set.pk)])
    assert one_line(result) and 'learning curve' in result.output


def test_export_writes_what_lammps_and_a_reader_need(tiny_fit, tmp_path):
    potential = tiny_fit.outputs.potential
    result = CliRunner().invoke(cli, ['export', str(potential.pk), '-o', str(tmp_path / 'out')])
    assert result.exit_code == 0, result.output
    stem = f'AlCu_{potential.pk}'
    files = {path.name for path in (tmp_path / 'out').iterdir()}
    assert files == {f'{stem}.yace', f'{stem}.yaml', 'lammps.in', f'{stem}.json'}
    assert (tmp_path / 'out' / f'{stem}.yace').read_bytes() == potential.get_content(mode='rb')
    assert f'pair_coeff * * {stem}.yace Al Cu' in (tmp_path / 'out' / 'lammps.in').read_text()
    summary = json.loads((tmp_path / 'out' / f'{stem}.json').read_text())
    assert summary['metrics']['rmse_forces_test'] == tiny_fit.outputs.metrics['rmse_forces_test']
    assert summary['lineage']['training_structures'] == 16 and summary['lineage']['test_structures'] == 4


def test_lineage_of_many_rows_is_ranges_train_and_test_apart(tiny_fit, tmp_path):
    """Row ids print as ranges per file, train and test on their own lines (readable at 100,000 structures)."""
    from aiida_mlip_autopipe.cli.potentials import _lineage_lines
    from aiida_mlip_autopipe.cli.utils import ranges

    assert ranges([1, 2, 3, 7, 9, 10]) == '1-3, 7, 9-10' and ranges([]) == 'none'
    assert ranges(range(1, 100_001)) == '1-100000'

    class Lineage:  # a lineage of 100,000 rows of one file: 90,000 train, 10,000 test
        potential = tiny_fit.outputs.potential
        calculation = tiny_fit
        code = tiny_fit.inputs.code
        training_set = list(range(90_000))
        test_set = list(range(10_000))
        files = [
            {
                'filename': 'big.db',
                'format': 'ase_db',
                'sha256': 'f' * 64,
                'train_rows': [row for row in range(1, 100_001) if row % 10],
                'test_rows': list(range(10, 100_001, 10)),
            }
        ]
        dft_calculations = []
        initial_potential = None
        settings = {}

    lines = _lineage_lines(Lineage)
    assert len(lines) == 7 and max(len(line) for line in lines[:4]) < 200
    assert lines[4].startswith('  train: 90000 rows/frames: 1-9, 11-19,')
    assert lines[5].startswith('  test:  10000 rows/frames: 10, 20, 30,')


def test_train_from_a_config_file_refuses_bad_keys_in_one_line(aiida_profile, tmp_path):
    config = tmp_path / 'train.yaml'
    config.write_text(yaml.safe_dump({'pacemaker_executable': '/x/pacemaker', 'data_source_db': 'x.db', 'kapa': 1}))
    result = CliRunner().invoke(cli, ['train', str(config)])
    assert one_line(result) and 'kapa: Extra inputs are not permitted' in result.output, result.output
    config.write_text('- a list\n')
    result = CliRunner().invoke(cli, ['train', str(config)])
    assert one_line(result) and 'expected a mapping' in result.output


@pytest.mark.pacemaker
def test_train_with_a_protocol_on_stored_data(pacemaker_code, train_cu_al, tmp_path):
    """`train --protocol fast` with overrides (a tiny fit) on a stored TrainingSetData, run here."""
    overrides = tmp_path / 'overrides.yaml'
    overrides.write_text(
        yaml.safe_dump(
            {
                'min_structures': 10,
                'plots': False,
                'settings': {'fit': {'maxiter': 3}},
            }
        )
    )
    result = CliRunner().invoke(
        cli,
        [
            'train',
            '--protocol',
            'fast',
            '-X',
            str(pacemaker_code.pk),
            '-S',
            str(train_cu_al.merged.pk),
            '--overrides',
            str(overrides),
        ],
    )
    assert result.exit_code == 0, result.output
    assert 'PacemakerTrainingWorkChain<' in result.output and 'meV/Å' in result.output
    node = orm.load_node(int(result.output.split('PacemakerTrainingWorkChain<')[1].split('>')[0]))
    settings = node.inputs.settings.get_dict()
    assert (
        settings['fit']['maxiter'] == 3 and settings['potential']['functions']['number_of_functions_per_element'] == 16
    )


def test_collect_a_group_of_dft_calculations(session_localhost):
    """`collect GROUP`: a progress bar over the calculations, the collected node added to a group."""
    from tests.helpers import emt_labelled, make_pw_calculation

    group = orm.Group(label='cli-pw').store()
    group.add_nodes([make_pw_calculation(session_localhost, *emt_labelled(1.0 + 0.01 * i, seed=i)) for i in range(3)])
    result = CliRunner().invoke(cli, ['collect', 'cli-pw', '-G', 'cli-collected'])
    assert result.exit_code == 0, result.output
    assert '3 structures from 3 calculation(s)' in result.output
    (collected,) = orm.load_group('cli-collected').nodes
    assert len(collected) == 3
    orm.Group(label='cli-empty').store()
    result = CliRunner().invoke(cli, ['collect', 'cli-empty'])
    assert one_line(result) and 'holds no DFT calculations' in result.output


def test_progress_bars_count_what_is_done(monkeypatch):
    """On a terminal the bar advances by what was done since the last update (here: a fake terminal)."""
    import io

    import click

    from aiida_mlip_autopipe.cli.utils import progress_bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    monkeypatch.setattr(click, 'get_text_stream', lambda name: stream)
    with progress_bar('reading', 10) as update:
        for done in (3, 7, 10):
            update(done)
    assert 'reading' in stream.getvalue() and '10/10' in stream.getvalue()


def test_a_huge_argument_is_not_repeated_in_the_error(aiida_profile, tmp_path):
    """A 189 KB selection string used to be printed back whole; the error stays one line of at most 1000 characters."""
    path = tmp_path / 'cli.db'
    with connect(path) as db:
        db.write(emt_structures(1, seed=8)[0])
    selection = 'id=' + ','.join(str(index) for index in range(40_000))
    result = CliRunner().invoke(cli, ['import', str(path), '--selection', selection])
    assert one_line(result) and len(result.output) < 1020, result.output[:1100]


@pytest.mark.pacemaker
def test_train_from_a_config_file(pacemaker_executable, session_localhost, tmp_path):
    """`train CONFIG.yaml` runs the façade: import, a real tiny fit, the .yace written where the file says."""
    database = ase_database(tmp_path / 'dft.db', emt_structures(12, repeat=2, seed=41))
    config = tmp_path / 'train.yaml'
    values = {
        'pacemaker_executable': str(pacemaker_executable),
        'data_source_db': str(database),
        'delta_learning': False,
        'min_structures': 10,
        'settings': {'potential': {'functions': {'number_of_functions_per_element': 5}}, 'fit': {'maxiter': 3}},
        'output_dir': str(tmp_path / 'out'),
        'potential_filename': 'cli.yace',
        'computer': session_localhost.label,
        'num_threads': 1,
    }
    config.write_text(yaml.safe_dump(values))
    result = CliRunner().invoke(cli, ['train', str(config)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / 'out' / 'cli.yace').is_file() and 'cli.yace' in result.output


# -- issue 20: export never clobbers nor follows links; an empty training split is one line -----------------------


def test_write_files_refuses_existing_files_links_and_directories(tmp_path):
    """Every target is checked before the first is written; a link is replaced (with overwrite), never followed."""
    from aiida_mlip_autopipe.potentials.export import ExportError, write_files

    outside = tmp_path / 'outside.txt'
    outside.write_text('outside')
    directory = tmp_path / 'out'
    directory.mkdir()
    (directory / 'mine.txt').write_text('mine')
    (directory / 'link.txt').symlink_to(outside)
    (directory / 'adir').mkdir()
    with pytest.raises(ExportError, match=r'mine.txt exists: not replaced \(--force replaces it\)'):
        write_files(directory, {'new.txt': b'new', 'mine.txt': b'x'})
    assert not (directory / 'new.txt').exists()  # nothing written: the check comes first
    with pytest.raises(ExportError, match=r'link.txt is a symbolic link \(to .*outside.txt\): not written through'):
        write_files(directory, {'link.txt': b'x'})
    with pytest.raises(ExportError, match='adir is a directory: not replaced'):
        write_files(directory, {'adir': b'x'}, overwrite=True)
    with pytest.raises(ExportError, match='not a plain file name'):
        write_files(directory, {'../escape.txt': b'x'})
    written = write_files(directory, {'mine.txt': b'new mine', 'link.txt': b'new link', 'fresh.txt': b'f'}, True)
    assert [path.name for path in written] == ['mine.txt', 'link.txt', 'fresh.txt']
    assert (directory / 'mine.txt').read_bytes() == b'new mine'
    assert not (directory / 'link.txt').is_symlink() and (directory / 'link.txt').read_bytes() == b'new link'
    assert outside.read_text() == 'outside'
    assert sorted(path.name for path in directory.iterdir()) == ['adir', 'fresh.txt', 'link.txt', 'mine.txt']


def test_export_never_replaces_a_file_nor_writes_through_a_link(tiny_fit, tmp_path):
    potential = tiny_fit.outputs.potential
    directory = tmp_path / 'exported'
    directory.mkdir()
    (directory / 'lammps.in').write_text('my own lammps input\n')
    outside = tmp_path / 'outside.yace'
    outside.write_text('not yours')
    stem = f'AlCu_{potential.pk}'
    (directory / f'{stem}.yace').symlink_to(outside)
    arguments = ['export', str(potential.pk), '-o', str(directory)]
    result = CliRunner().invoke(cli, arguments)
    assert one_line(result) and 'lammps.in exists: not replaced (--force replaces it)' in result.output, result.output
    assert f'in {directory}: {stem}.yace is a symbolic link (to {outside})' in result.output  # the folder once
    assert sorted(path.name for path in directory.iterdir()) == [f'{stem}.yace', 'lammps.in']  # nothing written
    assert (directory / 'lammps.in').read_text() == 'my own lammps input\n' and outside.read_text() == 'not yours'
    result = CliRunner().invoke(cli, [*arguments, '--force'])
    assert result.exit_code == 0, result.output
    assert outside.read_text() == 'not yours' and not (directory / f'{stem}.yace').is_symlink()
    assert (directory / f'{stem}.yace').read_bytes() == potential.get_content(mode='rb')
    assert 'pair_style pace' in (directory / 'lammps.in').read_text()
    assert not [path for path in directory.iterdir() if path.name.endswith('.tmp')]  # no temporary file left


def test_a_split_with_no_training_structure_is_one_line(fake_code, tmp_path):
    """`train --protocol` and `train CONFIG`: test_fraction 0.95 on five structures, one line, nothing stored."""
    from aiida_mlip_autopipe.data.training_set import TrainingSetData

    data = TrainingSetData.from_atoms(emt_structures(5, seed=50)).store()
    overrides = tmp_path / 'overrides.yaml'
    overrides.write_text(yaml.safe_dump({'min_structures': 1, 'test_fraction': 0.95}))
    before = orm.QueryBuilder().append(orm.Node).count()
    arguments = ['train', '--protocol', 'fast', '-X', str(fake_code.pk), '-S', str(data.pk)]
    result = CliRunner().invoke(cli, [*arguments, '--overrides', str(overrides)])
    assert one_line(result) and 'test_fraction=0.95 leaves no training structure' in result.output, result.output
    assert orm.QueryBuilder().append(orm.Node).count() == before
    database = ase_database(tmp_path / 'five.db', data.get_atoms())
    config = tmp_path / 'train.yaml'
    values = {
        'pacemaker_executable': '/bin/true',
        'data_source_db': str(database),
        'min_structures': 1,
        'test_fraction': 0.95,
        'computer': fake_code.computer.label,
        'num_threads': 1,
        'output_dir': str(tmp_path / 'out'),
    }
    config.write_text(yaml.safe_dump(values))
    result = CliRunner().invoke(cli, ['train', str(config)])
    assert one_line(result) and 'test_fraction=0.95 leaves no training structure' in result.output, result.output
