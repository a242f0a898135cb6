"""The active-learning loop end to end with real pacemaker, pace_activeset, the exploration job and EMT labels:
outputs, the iterations table, upfits, the fixed test set, per-structure lineage, failed labels tolerated."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType

from aiida_mlip_autopipe.active_learning.lineage import iteration_counts, structure_lineage
from aiida_mlip_autopipe.workflows.active_learning import PacemakerActiveLearningWorkChain, row_explorations
from tests.active_learning.helpers import EXPLORATION_JOBS, SELECTION, loop_builder

pytestmark = pytest.mark.pacemaker


def fits(loop) -> list:
    """The loop's training workflows, in order."""
    return sorted(
        (node for node in loop.called if node.process_label == 'PacemakerTrainingWorkChain'), key=lambda n: n.pk
    )


def test_loop_finishes_with_the_iterations_table(emt_loop):
    assert emt_loop.is_finished_ok, (emt_loop.exit_status, emt_loop.exit_message)
    rows = emt_loop.outputs.iterations.get_list()
    assert rows[0]['iteration'] == 0 and rows[0]['training_structures'] == 16
    explored = [row for row in rows if 'exploration' in row]
    assert explored and [row['iteration'] for row in explored] == list(range(1, len(explored) + 1))
    for row in explored:
        assert row['explored_steps'] > 100
        assert 0 <= row['fraction_above_gamma_lo'] <= 1
        assert row['selected'] <= SELECTION['max_per_iteration']
        assert row['labelled'] == row['selected'] and row['failed'] == 0
        assert row['calibration_labelled'] == row['calibration'] == SELECTION['calibration_samples']
        assert row['added'] == row['labelled'] + row['calibration_labelled'] - row['refused']
        assert row['wall_time'] > 0
    added = sum(row.get('added', 0) for row in rows)
    assert added > 0
    assert [row['stop_reason'] for row in rows[:-1]] == [None] * (len(rows) - 1)
    assert rows[-1]['stop_reason'] in ('max_iterations', 'converged')
    assert all(row['accepted'] for row in rows if 'training' in row)
    assert len(emt_loop.outputs.training_set) == 16 + added
    assert rows[-1]['training_structures'] == len(emt_loop.outputs.training_set)
    assert emt_loop.outputs.iterations.creator.process_label == 'record_iterations'
    assert emt_loop.outputs.plots['loop'].get_content(mode='rb')[:4] == b'\x89PNG'
    assert emt_loop.outputs.plots['calibration'].get_content(mode='rb')[:4] == b'\x89PNG'


def test_outputs_are_the_last_fit(emt_loop):
    rows = emt_loop.outputs.iterations.get_list()
    accepted = [row['training'] for row in rows if row.get('accepted')]
    last = orm.load_node(accepted[-1])
    for name in ('potential', 'potential_yaml', 'metrics', 'active_set', 'training_set'):
        assert emt_loop.outputs[name].uuid == last.outputs[name].uuid
    assert emt_loop.outputs.potential.filename.endswith('.yace')
    assert emt_loop.outputs.active_set.filename.endswith('.asi')


def test_retrains_continue_from_the_previous_potential_with_the_same_test_set(emt_loop):
    trainings = fits(emt_loop)
    assert len(trainings) >= 2
    test_set = trainings[0].outputs.test_set
    assert len(test_set) == 4 and emt_loop.outputs.test_set.uuid == test_set.uuid
    for previous, current in itertools.pairwise(trainings):
        calculation = current.outputs.potential.creator
        assert calculation.inputs.initial_potential.uuid == previous.outputs.potential_yaml.uuid
        assert calculation.inputs.test_set.uuid == test_set.uuid
    # no test structure is ever trained on
    test_positions = {structure.positions.round(6).tobytes() for structure in test_set.get_atoms()}
    trained = {structure.positions.round(6).tobytes() for structure in emt_loop.outputs.training_set.get_atoms()}
    assert not test_positions & trained


def test_every_structure_traces_to_its_iteration_exploration_and_labeller(emt_loop):
    rows = emt_loop.outputs.iterations.get_list()
    origins = structure_lineage(emt_loop.outputs.training_set)
    counts = iteration_counts(origins)
    assert counts[0] == 16
    assert {iteration: count for iteration, count in counts.items() if iteration} == {
        row['iteration']: row['added'] for row in rows if row.get('added')
    }
    for origin in origins:
        if origin.iteration == 0:
            assert origin.exploration is None and origin.source.startswith('aiida:') is False
            continue
        row = rows[origin.iteration]
        assert origin.exploration.pk in row_explorations(row)
        assert origin.structure.creator.pk == origin.exploration.pk
        assert origin.labeller.process_label == 'label_with_emt' and origin.labeller.is_finished_ok
        assert origin.labeller.inputs.structure.uuid == origin.structure.uuid
        (link,) = origin.labeller.base.links.get_incoming(link_type=LinkType.CALL_CALC).all()
        if link.link_label.startswith('calibrate_'):  # a calibration frame below gamma_lo
            assert origin.gamma < SELECTION['gamma_lo']
            assert link.link_label.split('_')[-1] in {
                key.split('_')[-1] for key in origin.exploration.outputs.calibration
            }
        else:  # a selected candidate (the stopping frame of a trajectory may lie above gamma_hi)
            assert link.link_label.startswith('label_') and origin.gamma >= SELECTION['gamma_lo']
        gamma = origin.exploration.outputs.gamma.get_array('max_gamma')
        assert gamma[origin.trajectory, origin.step] == pytest.approx(origin.gamma)
        # the label is EMT's energy of exactly that configuration
        atoms = origin.structure.get_ase()
        from ase.calculators.emt import EMT

        atoms.calc = EMT()
        labelled = emt_loop.outputs.training_set.get_atoms()[origin.index]
        assert labelled.get_potential_energy() == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(labelled.positions, atoms.positions, atol=1e-10)


def test_provenance_reaches_the_explorations_from_the_potential(emt_loop):
    query = orm.QueryBuilder().append(orm.Node, filters={'id': emt_loop.outputs.potential.pk}, tag='potential')
    query.append(orm.CalcJobNode, with_descendants='potential', filters={'process_type': {'like': '%exploration'}})
    found = {node.pk for node in query.all(flat=True)}
    rows = emt_loop.outputs.iterations.get_list()
    assert found == {pk for row in rows if row.get('added') for pk in row_explorations(row)}


def test_each_iteration_explores_with_several_jobs_and_merges_their_selections(emt_loop):
    """exploration_jobs=2: each iteration runs two exploration calculations at once on disjoint shares of the starts,
    with different seeds; the row sums their steps and candidates, and the merged selection stays within
    max_per_iteration, taken in turn from each job."""
    rows = emt_loop.outputs.iterations.get_list()
    for row in [row for row in rows if row.get('exploration') is not None]:
        jobs = [orm.load_node(pk) for pk in row_explorations(row)]
        assert len(jobs) == EXPLORATION_JOBS and all(job.is_finished_ok for job in jobs)
        labels = {job.base.links.get_incoming(link_type=LinkType.CALL_CALC).one().link_label for job in jobs}
        assert labels == {f'explore_iteration_{row["iteration"]:02d}_job_{job:02d}' for job in range(EXPLORATION_JOBS)}
        shares = [set(job.inputs.structures) for job in jobs]
        assert sorted(len(share) for share in shares) == [1, 2] and not shares[0] & shares[1]
        assert len({job.inputs.exploration['seed'] for job in jobs}) == EXPLORATION_JOBS
        summaries = [job.outputs.summary.get_dict() for job in jobs]
        assert row['explored_steps'] == sum(summary['explored_steps'] for summary in summaries)
        assert row['candidates'] == sum(summary['candidates'] for summary in summaries)
        assert row['max_gamma'] == max(summary['max_gamma'] for summary in summaries)
        above = sum(summary['steps_above_gamma_lo'] for summary in summaries)
        assert row['fraction_above_gamma_lo'] == pytest.approx(above / row['explored_steps'])
        offered = sum(len(job.outputs.selected) for job in jobs if 'selected' in job.outputs)
        assert row['selected'] == min(offered, SELECTION['max_per_iteration'])


def test_cli_lineage_shows_the_iterations(emt_loop):
    from click.testing import CliRunner

    from aiida_mlip_autopipe.cli import cli

    result = CliRunner().invoke(cli, ['lineage', str(emt_loop.outputs.potential.pk)])
    assert result.exit_code == 0, result.output
    rows = emt_loop.outputs.iterations.get_list()
    assert 'active learning (training structures per iteration):' in result.output
    assert 'iteration 0: 16 structures of the first fit' in result.output
    for row in rows:
        if row.get('added'):
            assert (
                f'iteration {row["iteration"]}: {row["added"]} structures proposed by '
                f'PacemakerExplorationCalculation<{", ".join(map(str, row_explorations(row)))}>'
            ) in result.output
    assert 'labelled by label_with_emt' in result.output
    assert 'DFT:' not in result.output  # explorations, pace_activeset and EMT are not DFT


def test_failed_labels_are_tolerated_and_reported(pacemaker_code, cu_initial_set, monkeypatch):
    """Every second selected structure is given to EMT as iron (which EMT lacks): those labels fail for real, the
    loop goes on with the others and counts the failures."""
    from aiida.engine import run_get_node

    from aiida_mlip_autopipe.labellers.emt import EMTLabeller, label_with_emt

    def launch(self, workchain, structure, label):
        if int(label.rsplit('_', 1)[-1]) % 2:
            atoms = structure.get_ase()
            atoms.set_chemical_symbols(['Fe'] * len(atoms))
            structure = orm.StructureData(ase=atoms)
        return label_with_emt.run_get_node(structure, metadata={'call_link_label': label})[1]

    monkeypatch.setattr(EMTLabeller, 'launch', launch)
    builder = loop_builder(
        pacemaker_code,
        cu_initial_set,
        max_iterations=orm.Int(1),
        convergence=orm.Dict({'max_failed_fraction': 0.6, 'fraction_above_gamma_lo': 0.0}),
        selection=orm.Dict({**SELECTION, 'calibration_samples': 0}),
    )
    _, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    row = node.outputs.iterations.get_list()[1]
    assert row['failed'] == row['selected'] // 2 and row['labelled'] == row['selected'] - row['failed'] > 0
    failed = [child for child in node.called if child.process_label == 'label_with_emt' and not child.is_finished_ok]
    assert len(failed) == row['failed'] and all(child.exit_status == 470 for child in failed)
    assert 'EMT cannot label Fe' in failed[0].exit_message
    assert len(node.outputs.training_set) == 16 + row['added']


def test_too_many_failed_labels_end_the_loop_with_a_named_code(pacemaker_code, cu_initial_set, monkeypatch):
    from aiida.engine import run_get_node

    from aiida_mlip_autopipe.labellers.emt import EMTLabeller, label_with_emt

    def launch(self, workchain, structure, label):
        atoms = structure.get_ase()
        atoms.set_chemical_symbols(['Fe'] * len(atoms))
        return label_with_emt.run_get_node(orm.StructureData(ase=atoms), metadata={'call_link_label': label})[1]

    monkeypatch.setattr(EMTLabeller, 'launch', launch)
    _, node = run_get_node(loop_builder(pacemaker_code, cu_initial_set, max_iterations=orm.Int(1)))
    assert node.exit_status == PacemakerActiveLearningWorkChain.exit_codes.ERROR_LABELLING_FAILED.status
    assert 'labelling calculations of iteration 1 failed (more than 50%)' in node.exit_message
    assert 'EMT cannot label Fe' in node.exit_message


@pytest.mark.parametrize(
    ('changes', 'message'),
    [
        ({'labeller': None}, 'give exactly one labeller'),
        ({'labeller': 'vasp'}, "labeller='vasp': known are ase:emt"),
        ({'pseudo_family': 'SSSP'}, '`pseudo_family` is for the Quantum ESPRESSO labellers'),
        ({'iron': True}, 'EMT cannot label Fe (it knows Ag, Al, Au, C, Cu, H, N, Ni, O, Pd, Pt)'),
        ({'selection': {'gamma_lo': 3.0, 'gamma_hi': 2.0}}, 'gamma_hi=2.0 must be greater than gamma_lo=3.0'),
        ({'convergence': {'max_failed_fraction': 2}}, 'max_failed_fraction: Input should be less than or equal to 1'),
        ({'selection': {'max_per_iteration': 0}}, 'max_per_iteration: Input should be greater than 0'),
        ({'max_iterations': -1}, 'max_iterations=-1: give at least 1 explore-label-refit cycle'),
        ({'max_concurrent_labels': 0}, 'max_concurrent_labels=0: give at least 1'),
        ({'exploration_jobs': 0}, 'exploration_jobs=0: give 1 to 3, the number of starting structures'),
        ({'exploration_jobs': 4}, 'exploration_jobs=4: give 1 to 3, the number of starting structures'),
        ({'structures': {}}, 'structures: give at least one starting structure'),
        ({'nickel': True}, "structures.ni (Ni4) has Ni, which the first fit's data lacks (it has Cu)"),
        ({'refit': {'functions_schedule': [[10, 8]]}}, 'the first entry must start at 0 structures'),
        (
            {'convergence': {'property_targets': {'B0': {'max_relative_error': 0.05}}}},
            'convergence.property_targets needs the validation inputs',
        ),
        ({'convergence': {'property_targets': {'B0': {'below': 1.0}}}}, 'targets.B0.below: unknown'),
        ({'nickel_reference': True}, "validation.structures.ni (Ni) has Ni, which the first fit's data lacks"),
    ],
)
def test_bad_inputs_are_refused_before_anything_runs(pacemaker_code, cu_initial_set, changes, message):
    from aiida.engine import run_get_node
    from ase.build import bulk

    builder = loop_builder(pacemaker_code, cu_initial_set)
    changes = dict(changes)
    if changes.pop('iron', False):
        builder.structures = {'fe': orm.StructureData(ase=bulk('Fe', 'bcc', a=2.87))}
    if changes.pop('nickel', False):
        builder.structures = {'ni': orm.StructureData(ase=bulk('Ni', 'fcc', a=3.52, cubic=True))}
    if changes.pop('nickel_reference', False):
        builder.validation.structures = {'ni': orm.StructureData(ase=bulk('Ni', 'fcc', a=3.52))}
        builder.validation.properties = orm.Dict({'eos': {}})
    if changes.get('structures') == {}:
        changes.pop('structures')
        builder.structures = {}
    count = orm.QueryBuilder().append(orm.ProcessNode).count()
    nodes = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(ValueError, match=re.escape(message)):  # on assignment, or at the launch
        for name, value in changes.items():
            if value is None:
                builder.pop(name)
            elif isinstance(value, int):
                builder[name] = orm.Int(value)
            else:
                builder[name] = orm.Str(value) if isinstance(value, str) else orm.Dict(value)
        run_get_node(builder)
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == count
    assert orm.QueryBuilder().append(orm.Node).count() == nodes  # nothing stored


def test_builder_from_protocol(pacemaker_code, cu_initial_set):
    from aiida_mlip_autopipe.workflows.protocols import load_protocol

    builder = PacemakerActiveLearningWorkChain.get_builder_from_protocol(
        pacemaker_code,
        {'fcc': orm.StructureData(ase=cu_initial_set.get_atoms()[0])},
        'fast',
        {'training': {'min_structures': 10}, 'selection': {'gamma_lo': 2.0}, 'max_iterations': 2},
        training_sets={'initial': cu_initial_set},
        options={'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 2}},
    )
    assert builder.training.settings.get_dict() == load_protocol('fast')['settings']
    assert builder.training.min_structures.value == 10 and builder.training.code.uuid == pacemaker_code.uuid
    assert builder.training.options['resources']['num_mpiprocs_per_machine'] == 2
    assert builder.selection.get_dict() == {'gamma_lo': 2.0} and builder.max_iterations.value == 2
    assert builder.labeller.value == 'ase:emt'
    inputs = builder._inputs(prune=True)
    assert PacemakerActiveLearningWorkChain.spec().inputs.validate(inputs) is None


def test_labels_run_in_batches_of_max_concurrent_labels(emt_loop):
    from tests.active_learning.helpers import MAX_CONCURRENT_LABELS

    rows = emt_loop.outputs.iterations.get_list()
    for row in rows:
        if not row.get('selected'):
            continue
        count = row['selected'] + row['calibration']
        assert row['label_batches'] == -(-count // MAX_CONCURRENT_LABELS)
        labels = sorted(
            (
                node
                for node in emt_loop.called
                if node.process_label == 'label_with_emt'
                and node.base.links.get_incoming().all()[0].link_label.split('_')[1] == f'{row["iteration"]:02d}'
            ),
            key=lambda node: node.pk,
        )
        assert len(labels) == count
        # the batches follow each other: every label of a batch ended before the next batch began
        batches = [labels[start : start + MAX_CONCURRENT_LABELS] for start in range(0, count, MAX_CONCURRENT_LABELS)]
        for previous, current in itertools.pairwise(batches):
            assert max(node.mtime for node in previous) <= min(node.ctime for node in current)


def test_the_basis_grows_by_the_schedule_with_a_ladder_upfit(emt_loop):
    """REFIT: 4 functions per element for the first fit (16 structures), 8 once the fit has 18 or more."""
    import tempfile

    from pyace import BBasisConfiguration

    rows = emt_loop.outputs.iterations.get_list()
    trainings = fits(emt_loop)
    assert rows[0]['functions'] == 4 and all(row['functions'] == 8 for row in rows[1:] if 'functions' in row)
    sizes = []
    for training in trainings:
        with tempfile.NamedTemporaryFile(suffix='.yaml') as handle:
            handle.write(training.outputs.potential_yaml.get_content(mode='rb'))
            handle.flush()
            sizes.append(BBasisConfiguration(handle.name).total_number_of_functions)
    assert sizes[0] == 4 and all(size == 8 for size in sizes[1:])
    grown = trainings[1].outputs.potential.creator
    assert grown.inputs.initial_potential.uuid == trainings[0].outputs.potential_yaml.uuid
    assert grown.inputs.settings.get_dict()['fit']['ladder_step'] == 1_000_000  # pacemaker -ip: one ladder step


def test_calibration_compares_the_current_potential_with_the_new_labels(emt_loop):
    """error_vs_gamma holds, for every label, the force RMSE of the potential that explored (recomputed here with
    get_calculator on its .yace) against the EMT label; miss_rate counts the calibration frames above the threshold."""
    from aiida_mlip_autopipe import get_calculator

    rows = emt_loop.outputs.iterations.get_list()
    origins = structure_lineage(emt_loop.outputs.training_set)
    labelled = emt_loop.outputs.training_set.get_atoms()
    for row in rows:
        if not row.get('error_vs_gamma'):
            continue
        explorer = orm.load_node(row_explorations(row)[0]).inputs.potential  # the B-basis YAML that explored
        potential = explorer.creator.outputs.potential
        calculator = get_calculator(potential)
        recorded = sorted((entry['gamma'], entry['force_rmse']) for entry in row['error_vs_gamma'])
        below = [entry for entry in row['error_vs_gamma'] if entry['below_gamma_lo']]
        assert len(below) == row['calibration_labelled'] == SELECTION['calibration_samples']
        threshold = 0.3
        assert row['miss_rate'] == pytest.approx(sum(e['force_rmse'] > threshold for e in below) / len(below))
        assert set(row['suggested']) == {'gamma_lo', 'gamma_hi'}
        for origin in origins:
            if origin.iteration != row['iteration']:
                continue
            atoms = labelled[origin.index].copy()
            reference = labelled[origin.index].get_forces()
            atoms.calc = calculator
            rmse = float(np.sqrt(np.mean(np.square(atoms.get_forces() - reference))))
            match = [value for gamma, value in recorded if gamma == pytest.approx(origin.gamma, rel=1e-5)]
            assert match and min(abs(value - rmse) for value in match) < 1e-3


def test_every_potential_is_validated_with_the_reference_labelled_once(emt_loop):
    """Each taken fit is validated (EOS against EMT); the EMT reference labels of the first validation serve every
    later one; a target no fit meets lets the loop run to max_iterations with the properties in every row."""
    rows = emt_loop.outputs.iterations.get_list()
    validations = [orm.load_node(row['validation']) for row in rows if row.get('validation')]
    assert len(validations) == sum(1 for row in rows if row.get('accepted', True)) >= 2
    assert all(node.is_finished_ok for node in validations)
    for row in rows:
        if row.get('validation'):
            assert set(row['properties']['fcc_cu']) >= {'V0', 'B0'}
            assert row['property_targets_met'] is False
    assert rows[-1]['stop_reason'] == 'max_iterations'
    called = [len(node.called) for node in validations]  # the first labels the EOS volumes, later ones reuse them
    assert 'reference' not in validations[0].inputs
    assert all(node.inputs.reference.uuid == validations[0].outputs.reference_labels.uuid for node in validations[1:])
    assert called[0] > max(called[1:])


def test_property_targets_stop_the_loop(pacemaker_code, cu_initial_set):
    """The loop stops at the first potential whose validation meets the targets (stop_reason property_targets), not
    at max_iterations; a potential whose EOS has no minimum (the first, 4-function fit here) does not meet them."""
    from aiida.engine import run_get_node

    from tests.active_learning.helpers import fcc_cu

    builder = loop_builder(pacemaker_code, cu_initial_set, max_iterations=orm.Int(3))
    builder.validation.structures = fcc_cu()
    builder.validation.properties = orm.Dict({'eos': {'points': 5}})
    builder.convergence = orm.Dict({'property_targets': {'V0': {'max_relative_error': 10.0}}})
    _, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    rows = node.outputs.iterations.get_list()
    assert len(rows) <= 3  # stopped before max_iterations (3 cycles: 4 rows)
    assert rows[-1]['stop_reason'] == 'property_targets'
    assert rows[-1]['property_targets_met'] is True
    assert abs(rows[-1]['properties']['fcc_cu']['V0']['relative_error']) <= 10.0
    assert all(row.get('property_targets_met') is False for row in rows[:-1] if row.get('validation'))


def test_the_loop_registers_its_tools_when_created(session_localhost, cu_initial_set, tmp_path):
    """``python3`` (the exploration) and ``pace_activeset`` (every fit) beside pacemaker are registered when the
    loop is created, before any step: its steps and the fits they launch only look them up."""
    from aiida.engine.utils import instantiate_process
    from aiida.manage.manager import get_manager

    code = orm.InstalledCode(label='p', computer=session_localhost, filepath_executable=f'{tmp_path}/bin/pacemaker')

    def registered(name: str) -> int:
        filters = {'attributes.filepath_executable': f'{tmp_path}/bin/{name}'}
        return orm.QueryBuilder().append(orm.InstalledCode, filters=filters).count()

    assert (registered('python3'), registered('pace_activeset')) == (0, 0)
    instantiate_process(get_manager().get_runner(), loop_builder(code.store(), cu_initial_set))
    assert (registered('python3'), registered('pace_activeset')) == (1, 1)
