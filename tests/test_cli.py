"""The ``mlip-autopipe`` command line: import, find, lineage, and clear messages for bad input."""

from ase.db import connect
from click.testing import CliRunner

from aiida_mlip_autopipe.cli import cli
from aiida_mlip_autopipe.datasets import emt_structures


def test_import_and_refusal(aiida_profile, tmp_path):
    path = tmp_path / 'cli.db'
    with connect(path) as db:
        for atoms in emt_structures(3, seed=8):
            db.write(atoms)
    result = CliRunner().invoke(cli, ['import', str(path)])
    assert result.exit_code == 0, result.output
    assert '3 structures' in result.output and '"imported": 3' in result.output
    result = CliRunner().invoke(cli, ['import', str(tmp_path / 'missing.db')])
    assert result.exit_code == 1 and 'no such file' in result.output


def test_extxyz_suffix_in_any_case(aiida_profile, tmp_path):
    from ase.io import write

    path = tmp_path / 'GOOD.XYZ'
    write(path, emt_structures(2, seed=9), format='extxyz')
    result = CliRunner().invoke(cli, ['import', str(path)])
    assert result.exit_code == 0, result.output
    assert '2 structures' in result.output


def test_find_and_lineage(tiny_fit):
    potential = tiny_fit.outputs.potential
    result = CliRunner().invoke(cli, ['find', '-e', 'Cu', '-e', 'Al', '--max-rmse-forces', '1e9'])
    assert result.exit_code == 0 and potential.uuid in result.output
    result = CliRunner().invoke(cli, ['lineage', str(potential.pk)])
    assert result.exit_code == 0, result.output
    assert f'PacemakerCalculation<{tiny_fit.pk}>' in result.output and 'training set: 16 structures' in result.output
    result = CliRunner().invoke(cli, ['lineage', str(tiny_fit.inputs.training_set.pk)])
    assert result.exit_code == 1 and 'was not created by a PacemakerCalculation' in result.output
