"""``mlip-autopipe validate``: the table of a real tiny potential against EMT; reuse; one-line errors."""

from __future__ import annotations

from click.testing import CliRunner

from aiida_mlip_autopipe.cli import cli
from tests.helpers import one_line


def emt_labels() -> int:
    from aiida import orm

    query = orm.QueryBuilder().append(
        orm.CalcFunctionNode, filters={'process_type': 'aiida_mlip_autopipe.labellers.emt.label_with_emt'}
    )
    return query.count()


def test_validate_prints_table_and_reuses(tiny_fit):
    """Default structures (ASE's Cu and Al crystals), EOS and phonons; the second run labels nothing new."""
    potential = str(tiny_fit.outputs.potential.pk)
    result = CliRunner().invoke(cli, ['validate', potential, '-p', 'eos', '-p', 'phonons', '--no-reuse'])
    assert result.exit_code == 0, result.output
    rows = {tuple(line.split()[:2]) for line in result.output.splitlines()[2:] if line.strip()}
    assert {('Cu', 'B0'), ('Al', 'B0'), ('Cu', 'phonon_rmse'), ('Al', 'phonon_rmse')} <= rows
    assert 'plots: Al_eos<' in result.output
    before = emt_labels()
    result = CliRunner().invoke(cli, ['validate', potential, '-p', 'eos'])
    assert result.exit_code == 0, result.output
    assert emt_labels() == before


def test_validate_refuses_in_one_line(tiny_fit):
    from aiida import orm
    from ase.build import bulk

    potential = str(tiny_fit.outputs.potential.pk)
    nickel = orm.StructureData(ase=bulk('Ni', 'fcc', a=3.52)).store()
    result = CliRunner().invoke(cli, ['validate', potential, '--structure', str(nickel.pk)])
    assert one_line(result), result.output
    assert 'Ni not in the potential (it has Al, Cu)' in result.output
    result = CliRunner().invoke(cli, ['validate', potential, '-p', 'bandgap'])
    assert one_line(result), result.output
    assert "'bandgap' is not one of" in result.output


def test_validate_takes_the_process_that_made_the_potential_and_list_filters_on_it(tiny_fit):
    """``validate`` of the calculation (or workflow) that made a potential validates its potential output (elastic
    constants: the tiny fit has no EOS minimum); ``list --target`` keeps the potentials whose newest validation meets
    the targets and names that validation."""
    from aiida import orm

    from aiida_mlip_autopipe.workflows.validation import latest_validation

    result = CliRunner().invoke(cli, ['validate', str(tiny_fit.pk), '-p', 'elastic'])
    assert result.exit_code == 0, result.output
    validation = latest_validation(tiny_fit.outputs.potential)
    assert validation is not None and f'validation {validation.pk};' in result.output
    assert validation.inputs.potential.uuid == tiny_fit.outputs.potential.uuid

    potential = str(tiny_fit.outputs.potential.pk)
    loose = CliRunner().invoke(cli, ['list', '-t', 'C11', 'max_abs_error', '1e9', '-t', 'C44', 'max_abs_error', '1e9'])
    assert loose.exit_code == 0, loose.output
    listed = {line.split()[0]: line.split()[-1] for line in loose.output.splitlines()[2:] if line.strip()}
    assert listed.get(potential) == str(validation.pk), (loose.output, validation.outputs.properties.get_dict())
    strict = CliRunner().invoke(cli, ['list', '-t', 'C11', 'max_abs_error', '0'])
    assert strict.exit_code == 0, strict.output
    assert potential not in {line.split()[0] for line in strict.output.splitlines() if line.strip()}

    wrong = CliRunner().invoke(cli, ['list', '-t', 'V0', 'below', '1'])
    assert one_line(wrong), wrong.output
    assert 'targets.V0.below: unknown' in wrong.output
    structure = orm.StructureData(cell=[[2, 0, 0], [0, 2, 0], [0, 0, 2]]).store()
    result = CliRunner().invoke(cli, ['validate', str(structure.pk)])
    assert one_line(result), result.output
    assert 'is neither a potential nor the process that made one' in result.output
