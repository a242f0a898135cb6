"""Validation inputs a new user tried that used to run (and give nonsense, or fail late), and a CLI that crashed
after printing its table."""

from __future__ import annotations

import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from aiida_mlip_autopipe.validation import elastic
from aiida_mlip_autopipe.validation.options import parse_properties


@pytest.mark.parametrize(
    ('properties', 'message'),
    [
        ({'md': {'temperatures': [0]}}, 'properties.md.temperatures.0: Input should be greater than 0'),
        ({'md': {'temperatures': [-300]}}, 'properties.md.temperatures.0: Input should be greater than 0'),
        ({'md': {'temperatures': [float('nan')]}}, 'properties.md.temperatures.0: Input should be a finite number'),
        ({'md': {'temperatures': [300, 300]}}, 'properties.md.temperatures: Value error, [300.0, 300.0] repeats'),
        ({'md': {'friction': float('inf')}}, 'properties.md.friction: Input should be a finite number'),
        ({'md': {'min_distance': float('inf')}}, 'properties.md.min_distance: Input should be a finite number'),
        ({'md': {'steps': True}}, 'properties.md.steps: Value error, True is a boolean, not a number'),
        ({'md': {'seed': -1}}, 'properties.md.seed: Input should be greater than or equal to 0'),
        ({'vacancy': {'supercell': [0, 1, 1]}}, 'properties.vacancy.supercell.0: Input should be greater than or'),
        ({'vacancy': {'supercell': [50, 50, 50]}}, 'properties.vacancy.supercell.0: Input should be less than or'),
        ({'phonons': {'supercell': [2, -1, 2]}}, 'properties.phonons.supercell.1: Input should be greater than or'),
        ({'eos': {'eos': 'foo'}}, "properties.eos.eos: Input should be 'sj', 'taylor'"),
        ({'eos': {'points': 1e9}}, 'properties.eos.points: Input should be less than or equal to 101'),
    ],
)
def test_borderline_options_are_refused(properties, message):
    """Each of these used to be accepted (0 K or negative MD, a 0 or 50-fold supercell, an unknown EOS, NaN)."""
    with pytest.raises(ValueError, match='^' + message.replace('(', r'\(').replace(')', r'\)').replace('[', r'\[')):
        parse_properties(properties)


def test_borderline_options_that_are_fine():
    parsed = parse_properties({'eos': {'eos': 'vinet', 'points': 7.0}, 'md': {'temperatures': [300, 900.5]}})
    assert parsed['eos'] == {'points': 7, 'volume_range': 0.1, 'eos': 'vinet'}
    assert parsed['md']['temperatures'] == [300.0, 900.5]


def test_elastic_of_a_non_cubic_crystal_is_not_a_cubic_average():
    """hcp Al used to report C11 = mean(C11, C22, C33) = 47.8 GPa (a number of no crystal): now the components."""
    hexagonal = bulk('Al', 'hcp', a=2.9, c=4.7)
    results, arrays = elastic.compute(hexagonal, EMT())
    tensor = arrays['elastic_tensor']
    assert not elastic.is_cubic(hexagonal)
    assert set(results) == {*elastic.COMPONENTS, 'B_elastic'}
    assert results['C11'] == pytest.approx(tensor[0, 0])
    assert results['C33'] == pytest.approx(tensor[2, 2])
    assert abs(results['C33'] - results['C11']) > 10  # hexagonal: C33 is not C11
    assert results['C66'] == pytest.approx(0.5 * (results['C11'] - results['C12']), rel=0.05)


@pytest.mark.parametrize('cubic', [True, False])
def test_elastic_of_cubic_copper_primitive_or_not(cubic):
    """The conventional and the primitive fcc cell are both cubic in ASE's frame: C11, C12, C44 as before."""
    copper = bulk('Cu', 'fcc', a=3.6, cubic=cubic)
    results, _ = elastic.compute(copper, EMT())
    assert elastic.is_cubic(copper)
    assert set(results) == {'C11', 'C12', 'C44', 'B_elastic'}
    assert results['C11'] > results['C44'] > 0


def test_elastic_of_a_rotated_cubic_crystal_gives_the_components():
    rotated = bulk('Cu', 'fcc', a=3.6, cubic=True)
    rotated.rotate(30, 'z', rotate_cell=True)
    assert not elastic.is_cubic(rotated)


def _inputs(tiny_fit, structure, properties):
    from aiida import orm

    return {
        'potential': tiny_fit.outputs.potential,
        'structures': {'crystal': orm.StructureData(ase=structure)},
        'properties': orm.Dict(properties),
        'labeller': orm.Str('ase:emt'),
    }


@pytest.mark.parametrize(
    ('structure', 'properties', 'message'),
    [
        ('molecule', {'eos': {}}, 'structures.crystal: pbc=[False, False, False]; eos need a crystal periodic'),
        ('molecule', {'phonons': {}}, 'structures.crystal: pbc=[False, False, False]; phonons need a crystal'),
        ('copper', {'vacancy': {'index': 32}}, 'properties.vacancy.index=32: the supercell of structures.crystal has'),
        ('copper', {'md': {'supercell': [10, 10, 10]}}, 'properties.md.supercell=[10, 10, 10] makes 4000 atoms'),
        ('atom', {'vacancy': {'supercell': [1, 1, 1]}}, 'properties.vacancy.supercell=[1, 1, 1] makes 1 atom of'),
    ],
)
def test_validation_refuses_unfit_structures(tiny_fit, structure, properties, message):
    """A molecule in a box (EOS of the box: an empty table, exit 0), a vacancy index beyond the supercell (failed
    late), 4000 atoms of MD, a vacancy in a 1-atom supercell (exit 410 after 8 nodes): refused at submission,
    nothing stored."""
    from aiida import orm
    from aiida.engine import run_get_node
    from ase import Atoms

    from aiida_mlip_autopipe.workflows.validation import PotentialValidationWorkChain

    atoms = bulk('Cu', 'fcc', a=3.6, cubic=True)
    if structure == 'atom':
        atoms = bulk('Cu', 'fcc', a=3.6)
    if structure == 'molecule':
        atoms = Atoms('Cu2', positions=[[0, 0, 0], [0, 0, 2.3]], cell=[10, 10, 10], pbc=False)
    nodes = orm.QueryBuilder().append(orm.Node).count()
    escaped = message.replace('(', r'\(').replace(')', r'\)').replace('[', r'\[')
    with pytest.raises(ValueError, match=escaped):
        run_get_node(PotentialValidationWorkChain, **_inputs(tiny_fit, atoms, properties))
    assert orm.QueryBuilder().append(orm.Node).count() == nodes


def test_validate_cli_without_plots_and_with_notes(tiny_fit):
    """Elastic constants alone make no plot: the command used to print the table, then crash on the missing
    `plots` output (exit 1, `NotExistentAttributeError`). A failed EOS now says why its row is empty."""
    from aiida import orm
    from click.testing import CliRunner

    from aiida_mlip_autopipe.cli import cli
    from aiida_mlip_autopipe.cli.validate import failure_notes

    structure = orm.StructureData(ase=bulk('Cu', 'fcc', a=3.6)).store()
    result = CliRunner().invoke(
        cli, ['validate', str(tiny_fit.outputs.potential.pk), '-s', str(structure.pk), '-p', 'elastic', '--no-reuse']
    )
    assert result.exit_code == 0, result.output
    assert 'plots: none' in result.output
    assert 'C44' in result.output
    from aiida.common.links import LinkType

    workflow = orm.WorkflowNode().store()
    for side, reason in (('potential', 'no minimum'), ('reference', None)):
        calculation = orm.CalcFunctionNode()
        calculation.base.links.add_incoming(workflow, LinkType.CALL_CALC, f'{side}_Cu_1')
        calculation.store()
        results = orm.Dict({'V0': None, **({'eos_failed': reason} if reason else {})})
        results.base.links.add_incoming(calculation, LinkType.CREATE, 'results')
        results.store()
    assert failure_notes(workflow) == ['Cu_1: eos of the potential failed: no minimum']


def test_export_refused_leaves_no_directory(tiny_fit, tmp_path):
    """`export --species "Cu Alx"` into a new directory: refused, and the directory used to be created (empty)."""
    from click.testing import CliRunner

    from aiida_mlip_autopipe.cli import cli

    target = tmp_path / 'new' / 'deeper'
    result = CliRunner().invoke(
        cli, ['export', str(tiny_fit.outputs.potential.pk), '-o', str(target), '--species', 'Cu Alx']
    )
    assert result.exit_code != 0 and "species ['Cu', 'Alx']" in result.output, result.output
    assert not (tmp_path / 'new').exists()
    result = CliRunner().invoke(cli, ['export', str(tiny_fit.outputs.potential.pk), '-o', str(target)])
    assert result.exit_code == 0, result.output
    assert (target / 'lammps.in').is_file()
