"""``mlip-autopipe validate``: the table of a real tiny potential against EMT; reuse; one-line errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from aiida_mlip_autopipe.cli import cli


@pytest.fixture(autouse=True)
def cli_logging_restored():
    """The command configures aiida's logging for the command line; restore it for the processes of later tests."""
    yield
    from aiida.common import log

    log.CLI_ACTIVE, log.CLI_LOG_LEVEL = None, None
    log.configure_logging(with_orm=True)


def one_line(result) -> bool:
    lines = [line for line in result.output.splitlines() if line.strip()]
    return result.exit_code != 0 and len(lines) == 1 and 'Traceback' not in result.output


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
