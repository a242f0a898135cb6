"""PacemakerTrainingWorkChain: data checks with named exit codes, the split, a real run and its lineage."""

import io
import os
import re

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_mlip_autopipe.data.training_set import TrainingSetData
from aiida_mlip_autopipe.demo.emt import emt_structures
from aiida_mlip_autopipe.importers.ase_db import import_ase_db
from aiida_mlip_autopipe.importers.source_file import file_sha256
from aiida_mlip_autopipe.potentials.lineage import find_potentials, potential_lineage
from aiida_mlip_autopipe.workflows.training import (
    PacemakerTrainingWorkChain,
    active_set_options,
    query_filters,
    split_indices,
)
from tests.helpers import FIT_OPTIONS, TINY_SETTINGS, ase_database, calculations


def fit_inputs(code, settings: dict | None = None, options: dict | None = None) -> dict:
    """The training workflow's code, settings and options inputs."""
    inputs = {'code': code, 'options': orm.Dict(options or {'resources': {'num_machines': 1}})}
    if settings is not None:
        inputs['settings'] = orm.Dict(settings)
    return inputs


def test_the_active_set_job_runs_where_the_fit_runs(aiida_profile):
    """pace_activeset gets the fit's queue, account, QOS, scheduler commands and walltime, one process, and none of
    the fit's parallel settings; the options pass the ShellJob's own validation."""
    from aiida_shell import ShellJob

    fit = {
        'resources': {'num_machines': 2, 'num_mpiprocs_per_machine': 64},
        'withmpi': True,
        'queue_name': 'compute',
        'account': 'project-42',
        'qos': 'normal',
        'max_wallclock_seconds': 3600,
        'custom_scheduler_commands': '#SBATCH --constraint=cpu',
    }
    options = active_set_options(orm.Dict(fit))
    assert options == {
        'redirect_stderr': True,
        'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
        **{name: fit[name] for name in ('queue_name', 'account', 'qos', 'max_wallclock_seconds')},
        'custom_scheduler_commands': '#SBATCH --constraint=cpu',
    }
    assert active_set_options(None) == {
        'redirect_stderr': True,
        'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
    }
    port = ShellJob.spec().inputs['metadata']['options']
    assert port.validate(options) is None


def test_too_few_structures_stop_before_any_pacemaker_run(fake_code, aiida_profile):
    small = TrainingSetData.from_atoms(emt_structures(4, seed=1)).store()
    _, node = run_get_node(PacemakerTrainingWorkChain, **fit_inputs(fake_code), training_sets={'small': small})
    assert node.exit_status == PacemakerTrainingWorkChain.exit_codes.ERROR_TOO_FEW_STRUCTURES.status == 202
    assert node.exit_message == 'found 4 structures in 1 node(s), at least 50 are required'
    assert calculations(node) == [] and 'training_set' not in node.outputs


def test_structures_without_forces_stop_with_a_named_exit_code(fake_code, aiida_profile):
    structures = emt_structures(3, seed=2)
    structures[1].calc = SinglePointCalculator(structures[1], energy=-1.0)
    data = TrainingSetData.from_atoms(structures).store()
    _, node = run_get_node(
        PacemakerTrainingWorkChain, **fit_inputs(fake_code), training_sets={'data': data}, min_structures=orm.Int(2)
    )
    assert node.exit_status == 203
    assert node.exit_message == '1 of the 3 structures found have no forces; pacemaker fits forces'
    assert calculations(node) == []


def test_unknown_group_and_foreign_nodes(fake_code, aiida_profile):
    _, node = run_get_node(PacemakerTrainingWorkChain, **fit_inputs(fake_code), group=orm.Str('no-such-group'))
    assert node.exit_status == 201 and "no group labelled 'no-such-group'" in node.exit_message
    group = orm.Group(label='mixed-nodes').store()
    group.add_nodes([orm.Int(3).store()])
    _, node = run_get_node(PacemakerTrainingWorkChain, **fit_inputs(fake_code), group=orm.Str('mixed-nodes'))
    assert node.exit_status == 204 and 'Int' in node.exit_message


def validation_message(**inputs):
    result = PacemakerTrainingWorkChain.spec().inputs.validate(inputs)
    return None if result is None else result.message


def test_exactly_one_data_source(fake_code, aiida_profile):
    data = TrainingSetData.from_atoms(emt_structures(2, seed=3)).store()
    assert 'exactly one of' in validation_message(**fit_inputs(fake_code))
    assert 'got: group, training_sets' in validation_message(
        **fit_inputs(fake_code), group=orm.Str('x'), training_sets={'a': data}
    )
    assert 'zbl_cutoffs' in validation_message(
        **fit_inputs(fake_code),
        training_sets={'a': data},
        delta_learning=orm.Bool(True),
        zbl_cutoffs=orm.Dict({'inner': 3.0, 'outer': 2.0}),
    )
    assert 'fit.kapa' in validation_message(**fit_inputs(fake_code, {'fit': {'kapa': 1}}), training_sets={'a': data})


def count_nodes() -> int:
    return orm.QueryBuilder().append(orm.Node).count()


@pytest.mark.parametrize(
    ('inputs', 'expected'),
    [
        # the three: elements that do not match the data, bad options, a negative split seed
        (
            {'settings': {'potential': {'elements': ['Cu', 'Ni']}}},
            "potential.elements=['Cu', 'Ni'] does not match the elements of the data ['Al', 'Cu']",
        ),
        ({'options': {'resources': {'num_machines': 1}, 'walltime': 10}}, 'walltime'),
        ({'options': {'resources': {'num_machines': 0}}}, 'num_machines'),
        ({'split_seed': -1}, 'split_seed=-1 must lie in [0, 2**32)'),
        # what the calculation would refuse: a .yace to continue, a template that writes other data files
        ({'initial_potential': 'potential.yace'}, 'is a .yace (C-tilde basis)'),
        ({'template': 'data: {filename: other.pckl.gzip}\n'}, 'the rendered input.yaml lacks the section(s) potential'),
        # delta learning with pacemaker's own ZBL core
        ({'settings': {'fit': {'repulsion': 'auto'}}, 'delta_learning': True}, 'second ZBL core'),
    ],
    ids=['elements', 'option-name', 'resources', 'split-seed', 'yace', 'template', 'zbl-twice'],
)
def test_bad_inputs_are_refused_before_anything_is_stored(fake_code, aiida_profile, inputs, expected):
    """The calculation's checks run on the training workflow's inputs at submission: no node is created."""
    data = TrainingSetData.from_atoms(emt_structures(3, seed=4)).store()
    extra = fit_inputs(fake_code, inputs.get('settings'), inputs.get('options'))
    pacemaker = {}
    if 'initial_potential' in inputs:
        pacemaker['initial_potential'] = orm.SinglefileData(io.BytesIO(b'x'), filename=inputs['initial_potential'])
    if 'template' in inputs:
        pacemaker['template'] = orm.SinglefileData(io.BytesIO(inputs['template'].encode()), filename='t.yaml.j2')
    if pacemaker:
        extra['base'] = {'pacemaker': pacemaker}
    if 'split_seed' in inputs:
        extra['split_seed'] = orm.Int(inputs['split_seed'])
    if inputs.get('delta_learning'):
        extra['delta_learning'] = orm.Bool(True)
    before = count_nodes()
    with pytest.raises(ValueError, match=re.escape(expected)):
        run_get_node(PacemakerTrainingWorkChain, training_sets={'a': data}, **extra)
    assert count_nodes() == before


def test_elements_are_checked_against_the_data_a_query_finds(fake_code, aiida_profile):
    data = TrainingSetData.from_atoms(emt_structures(3, elements=('Cu',), seed=5)).store()
    data.base.extras.set('marker', 'elements-query')
    message = validation_message(
        **fit_inputs(fake_code, {'potential': {'elements': ['Cu', 'Al']}}),
        filters=orm.Dict({'extras': {'marker': 'elements-query'}}),
    )
    assert "does not match the elements of the data ['Cu']" in message


def test_monitors_and_handler_overrides_reach_the_base_workflow(fake_code, aiida_profile):
    """Exposed, not copied: every input of the base workflow and the calculation can be given (code, settings and
    options stay top-level inputs of the training workflow, as the public interface has them)."""
    ports = PacemakerTrainingWorkChain.spec().inputs
    assert {'code', 'settings', 'options'} <= set(ports)
    assert {'handler_overrides', 'max_iterations', 'clean_workdir', 'on_unhandled_failure'} <= set(ports['base'])
    assert {'monitors', 'initial_potential', 'template', 'metadata'} <= set(ports['base']['pacemaker'])
    assert not {'training_set', 'test_set', 'code', 'settings'} & set(ports['base']['pacemaker'])
    assert 'options' not in ports['base']['pacemaker']['metadata']  # one path for options: the `options` input


def test_options_reach_the_calculation_by_one_path(fake_code, aiida_profile):
    """The ``options`` input is what the calculation gets (one machine without it); the validator checks exactly
    what the step submits."""
    from aiida_mlip_autopipe.workflows.training import calculation_inputs

    data = TrainingSetData.from_atoms(emt_structures(12, seed=3)).store()
    inputs = {**fit_inputs(fake_code, options={'resources': {'num_machines': 1}, 'max_wallclock_seconds': 600})}
    assert calculation_inputs(inputs)['metadata']['options'] == {
        'resources': {'num_machines': 1},
        'max_wallclock_seconds': 600,
    }
    assert calculation_inputs({'code': fake_code})['metadata']['options'] == {'resources': {'num_machines': 1}}
    bad = {**inputs, 'training_sets': {'data': data}, 'base': {'pacemaker': {'metadata': {'options': {}}}}}
    assert "Unexpected ports {'options': {}}" in validation_message(**bad)


def test_nested_filters_become_dotted_paths():
    nested = {'attributes': {'elements': {'contains': ['Cu']}, 'num_structures': {'>': 10, '<': 99}}, 'id': 5}
    assert query_filters(nested) == {
        'attributes.elements': {'contains': ['Cu']},
        'attributes.num_structures': {'>': 10, '<': 99},
        'id': 5,
    }


def test_split_is_reproducible_and_disjoint():
    train, test = split_indices(50, 0.1, seed=7)
    assert len(test) == 5 and len(train) == 45
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(range(50))
    again = split_indices(50, 0.1, seed=7)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert not np.array_equal(test, split_indices(50, 0.1, seed=8)[1])
    assert len(split_indices(5, 0.01, seed=1)[1]) == 1 and len(split_indices(5, 0.0, seed=1)[1]) == 0


@pytest.fixture(scope='module')
def cu_al_database(tmp_path_factory):
    """An ASE database of 24 two-element (Cu, Al) structures."""
    structures = emt_structures(24, repeat=2, seed=21)
    return ase_database(tmp_path_factory.mktemp('db') / 'cu_al.db', structures, lambda index: {'config_type': 'bulk'})


@pytest.fixture(scope='module')
def workchain_fit(pacemaker_code, cu_al_database):
    """A real run: import the database, put it in a group, train from the group query."""
    imported = import_ase_db(cu_al_database)
    group = orm.Group(label='cu-al-training').store()
    group.add_nodes(imported)
    _, node = run_get_node(
        PacemakerTrainingWorkChain,
        **fit_inputs(pacemaker_code, TINY_SETTINGS, FIT_OPTIONS),
        group=orm.Str('cu-al-training'),
        min_structures=orm.Int(20),
        test_fraction=orm.Float(0.2),
    )
    return node, imported


@pytest.mark.pacemaker
def test_real_run_from_a_group_query(workchain_fit):
    node, imported = workchain_fit
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    outputs = node.outputs
    assert {'potential', 'potential_yaml', 'metrics', 'learning_curve', 'training_set', 'test_set'} <= set(outputs)
    assert (len(outputs.training_set), len(outputs.test_set)) == (19, 5)
    assert outputs.training_set.elements == ['Al', 'Cu']
    assert outputs.metrics['num_structures_train'] == 19 and outputs.metrics['num_structures_test'] == 5
    # the merge calcfunction records exactly which nodes were used
    assembler = outputs.training_set.creator
    used = [link.node.uuid for link in assembler.base.links.get_incoming(node_class=TrainingSetData).all()]
    assert used == [imported.uuid]


@pytest.mark.pacemaker
def test_lineage_returns_the_file_hash_and_row_ids(workchain_fit, cu_al_database):
    node, imported = workchain_fit
    lineage = potential_lineage(node.outputs.potential)
    (entry,) = lineage.files
    assert entry['sha256'] == file_sha256(cu_al_database) and entry['filename'] == 'cu_al.db'
    assert entry['format'] == 'ase_db'
    assert entry['rows'] == list(range(1, 25))  # train and test together: every row of the database
    train_rows = {int(s.split('row=')[1].split(':')[0]) for s in node.outputs.training_set.get_sources()}
    assert len(train_rows) == 19 and train_rows < set(entry['rows'])
    assert lineage.settings == TINY_SETTINGS
    assert lineage.code.uuid == node.inputs.code.uuid
    assert [n.uuid for n in lineage.source_nodes] == [imported.uuid]
    assert lineage.dft_calculations == []
    potential = node.outputs.potential
    assert potential.uuid in [p.uuid for p in find_potentials(elements=['Cu', 'Al'], max_rmse_forces=1e9)]
    assert potential.uuid not in [p.uuid for p in find_potentials(elements=['Cu'], max_rmse_forces=1e-6)]
    file_node = orm.load_node(entry['uuid'])
    assert [p.uuid for p in find_potentials(source=file_node)] == [potential.uuid]
    assert potential.uuid not in [p.uuid for p in find_potentials(elements=['Ni'])]


def test_filters_resolve_the_query_once(fake_code, cu_al_database, aiida_profile):
    imported = import_ase_db(cu_al_database)
    sha = imported.base.attributes.get('import_info')['sha256']
    _, node = run_get_node(
        PacemakerTrainingWorkChain,
        **fit_inputs(fake_code),
        filters=orm.Dict({'attributes': {'import_info': {'sha256': sha}}}),
        min_structures=orm.Int(1000),
    )
    assert node.exit_status == 202 and node.exit_message.startswith('found 24 structures in 1 node(s)')


@pytest.mark.pacemaker
@pytest.mark.daemon
def test_submit_to_the_daemon(submit_and_await, pacemaker_code, train_cu_al):
    node = submit_and_await(
        PacemakerTrainingWorkChain,
        **fit_inputs(pacemaker_code, {**TINY_SETTINGS, 'fit': {'maxiter': 2}}, FIT_OPTIONS),
        training_sets={'merged': train_cu_al.merged},
        min_structures=orm.Int(10),
        timeout=300,
    )
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    assert node.outputs.potential.filename == 'output_potential.yace'
    assert os.path.basename(node.outputs.potential_yaml.filename) == 'output_potential.yaml'


def test_settings_that_do_not_fit_a_groups_data_stop_before_the_merge(fake_code, aiida_profile):
    """A group is resolved when the workflow runs: the settings are checked against its data before the merge."""
    data = TrainingSetData.from_atoms(emt_structures(3, elements=('Cu',), seed=7)).store()
    group = orm.Group(label='cu-only').store()
    group.add_nodes(data)
    _, node = run_get_node(
        PacemakerTrainingWorkChain,
        **fit_inputs(fake_code, {'potential': {'elements': ['Cu', 'Ni']}}),
        group=orm.Str('cu-only'),
        min_structures=orm.Int(2),
    )
    assert node.exit_status == PacemakerTrainingWorkChain.exit_codes.ERROR_SETTINGS_DO_NOT_FIT_DATA.status == 207
    assert "does not match the elements of the data ['Cu']" in node.exit_message
    assert calculations(node) == [] and 'training_set' not in node.outputs


def test_a_fixed_test_set_is_checked_with_a_groups_data(fake_code, aiida_profile):
    """The fixed ``test_set``'s elements count in the check of a group's data, as in the validator's for explicit
    data: a Ni test set against Cu-only settings stops before the merge, not in the calculation."""
    data = TrainingSetData.from_atoms(emt_structures(3, elements=('Cu',), seed=7)).store()
    group = orm.Group(label='cu-only-with-test-set').store()
    group.add_nodes(data)
    test_set = TrainingSetData.from_atoms(emt_structures(2, elements=('Cu', 'Ni'), seed=8)).store()
    _, node = run_get_node(
        PacemakerTrainingWorkChain,
        **fit_inputs(fake_code, {'potential': {'elements': ['Cu']}}),
        group=orm.Str('cu-only-with-test-set'),
        test_set=test_set,
        min_structures=orm.Int(2),
    )
    assert node.exit_status == PacemakerTrainingWorkChain.exit_codes.ERROR_SETTINGS_DO_NOT_FIT_DATA.status == 207
    assert "does not match the elements of the data ['Cu', 'Ni']" in node.exit_message
    assert calculations(node) == [] and 'training_set' not in node.outputs


@pytest.mark.parametrize(
    ('base_status', 'label', 'status'),
    [
        (310, 'ERROR_UNRECOVERABLE_FAILURE', 310),
        (501, 'ERROR_OUT_OF_MEMORY', 411),
        (401, 'ERROR_MAXIMUM_RESTARTS', 412),
        (402, 'ERROR_UNHANDLED_FAILURE', 413),
        (None, 'ERROR_TRAINING_FAILED', 414),  # excepted or killed
    ],
)
def test_a_failed_fit_is_passed_on_by_its_cause(base_status, label, status):
    """The training workflow names the cause with its own code (it used to exit 401 for every failure)."""
    from types import SimpleNamespace

    from aiida_mlip_autopipe.workflows.training import failure_code

    assert failure_code(SimpleNamespace(exit_status=base_status)) == label
    assert PacemakerTrainingWorkChain.exit_codes[label].status == status


# -- issue 20: de-duplication, an empty training split, one-line refusals --------------------------------------


def keys_of(node) -> set[bytes]:
    return set(node.structure_keys())


def test_identical_structures_are_merged_once_and_a_test_set_never_holds_a_training_structure(aiida_profile):
    """Invariant over random splits: the same node twice, an overlapping subset and a copy from another "file"
    (another ``source``) merge to each distinct structure once; train and test are disjoint and cover them all."""
    from aiida_mlip_autopipe.workflows.training import assemble_training_data

    base = TrainingSetData.from_atoms(emt_structures(12, seed=40), sources=[f'a:{i}' for i in range(12)]).store()
    overlap = base.select([0, 3, 5, 5])  # three structures of ``base``, one of them twice
    overlap.store()
    copied = TrainingSetData.from_atoms(base.get_atoms()[:2], sources=['b:0', 'b:1']).store()
    extra = TrainingSetData.from_atoms(emt_structures(3, seed=41)).store()
    distinct = keys_of(base) | keys_of(extra)
    assert len(distinct) == 15
    rng = np.random.default_rng(20)
    for _ in range(6):
        fraction, seed = float(rng.uniform(0.05, 0.6)), int(rng.integers(0, 1000))
        result = assemble_training_data(
            test_fraction=orm.Float(fraction),
            seed=orm.Int(seed),
            a=base,
            b=base,
            c=overlap,
            d=copied,
            e=extra,
        )
        train, test = result['training_set'], result['test_set']
        assert keys_of(train).isdisjoint(keys_of(test))
        assert len(train) == len(keys_of(train)) and len(test) == len(keys_of(test))  # no copies within either
        assert keys_of(train) | keys_of(test) == distinct and len(train) + len(test) == 15
        assert train.base.attributes.get('merge_info') == {
            'structures_given': 12 + 12 + 4 + 2 + 3,
            'duplicates_dropped': 18,
            'in_test_set_dropped': 0,
            'structures': 15,
        }


def test_a_fixed_test_set_is_left_out_of_the_training_set(aiida_profile):
    from aiida_mlip_autopipe.workflows.training import assemble_training_data

    data = TrainingSetData.from_atoms(emt_structures(6, seed=42)).store()
    test_set = data.select([1, 4])
    test_set.store()
    result = assemble_training_data(test_fraction=orm.Float(0.0), seed=orm.Int(1), fixed_test_set=test_set, a=data)
    assert 'test_set' not in result and len(result['training_set']) == 4
    assert keys_of(result['training_set']).isdisjoint(keys_of(test_set))
    assert result['training_set'].base.attributes.get('merge_info')['in_test_set_dropped'] == 2


def test_duplicates_do_not_count_towards_min_structures(fake_code, aiida_profile):
    data = TrainingSetData.from_atoms(emt_structures(4, seed=43)).store()
    _, node = run_get_node(
        PacemakerTrainingWorkChain,
        **fit_inputs(fake_code),
        training_sets={'a': data, 'b': data},
        min_structures=orm.Int(5),
    )
    assert node.exit_status == 202
    assert node.exit_message == (
        'found 4 distinct (4 duplicate or test_set structures dropped) structures in 2 node(s), at least 5 are required'
    )


@pytest.mark.parametrize(
    ('fraction', 'copies', 'expected'),
    [
        (0.95, 1, 'test_fraction=0.95 leaves no training structure: 5 of the 5 distinct structure(s)'),
        # ten structures given, but five distinct: 0.95 of them is every one
        (0.95, 2, 'merged 10 structures: 5 duplicate(s) dropped; 5 distinct structures to split'),
    ],
    ids=['five', 'five-twice'],
)
def test_a_split_with_no_training_structure_is_refused_before_anything_is_stored(
    fake_code, aiida_profile, fraction, copies, expected
):
    data = TrainingSetData.from_atoms(emt_structures(5, seed=44)).store()
    before = count_nodes()
    with pytest.raises(ValueError, match=re.escape(expected)):
        run_get_node(
            PacemakerTrainingWorkChain,
            **fit_inputs(fake_code),
            training_sets={f'copy{i}': data for i in range(copies)},
            test_fraction=orm.Float(fraction),
            min_structures=orm.Int(1),
        )
    assert count_nodes() == before


def test_a_fixed_test_set_holding_every_structure_is_refused(fake_code, aiida_profile):
    data = TrainingSetData.from_atoms(emt_structures(3, seed=45)).store()
    message = validation_message(
        **fit_inputs(fake_code), training_sets={'a': data}, test_set=data, min_structures=orm.Int(1)
    )
    assert message.startswith('every structure of the data is also in the fixed test_set')


def test_a_groups_split_with_no_training_structure_stops_before_the_merge(fake_code, aiida_profile):
    data = TrainingSetData.from_atoms(emt_structures(5, seed=46)).store()
    group = orm.Group(label='five-structures').store()
    group.add_nodes(data)
    _, node = run_get_node(
        PacemakerTrainingWorkChain,
        **fit_inputs(fake_code),
        group=orm.Str('five-structures'),
        test_fraction=orm.Float(0.95),
        min_structures=orm.Int(1),
    )
    assert node.exit_status == PacemakerTrainingWorkChain.exit_codes.ERROR_NO_TRAINING_STRUCTURE.status == 208
    assert 'leaves no training structure' in node.exit_message
    assert node.called == [] and 'training_set' not in node.outputs


def test_filters_query_builder_cannot_run_are_one_line(fake_code, aiida_profile):
    message = validation_message(**fit_inputs(fake_code), filters=orm.Dict({'id': {'in': 5}}))
    assert message.startswith("filters={'id': {'in': 5}}: not a query QueryBuilder can run (TypeError:")
    assert '\n' not in message
    before = count_nodes()
    with pytest.raises(ValueError, match='not a query QueryBuilder can run'):
        run_get_node(PacemakerTrainingWorkChain, **fit_inputs(fake_code), filters=orm.Dict({'id': {'in': 5}}))
    assert count_nodes() == before


@pytest.mark.parametrize(
    ('template', 'tag'),
    [
        ("{% include 'other.yaml.j2' %}\n", '{% include %}'),
        ("{% import 'macros.j2' as m %}\n", '{% import %}'),
        ("{% extends 'base.yaml.j2' %}\n", '{% extends %}'),
        ("{% from 'macros.j2' import value %}\n", '{% from ... import %}'),
    ],
    ids=['include', 'import', 'extends', 'from-import'],
)
def test_templates_that_load_other_templates_are_refused_in_one_line(fake_code, aiida_profile, template, tag):
    """The calculation's validator and the training workflow's (at submission, nothing stored) say which tag."""
    from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation

    data = TrainingSetData.from_atoms(emt_structures(3, seed=47)).store()
    node = orm.SinglefileData(io.BytesIO(template.encode()), filename='input.yaml.j2')
    expected = f'the input.yaml template uses {tag} (line 1): give one file'
    problem = PacemakerCalculation.spec().inputs.validate(
        {
            'code': fake_code,
            'training_set': data,
            'template': node,
            'metadata': {'options': {'resources': {'num_machines': 1}}},
        }
    )
    assert problem is not None and expected in problem.message and '\n' not in problem.message.strip()
    before = count_nodes()
    with pytest.raises(ValueError, match=re.escape(expected)):
        run_get_node(
            PacemakerTrainingWorkChain,
            **fit_inputs(fake_code),
            training_sets={'a': data},
            base={'pacemaker': {'template': node}},
        )
    assert count_nodes() == before


def test_a_non_pw_process_in_a_group_is_an_unsupported_node(fake_code, aiida_profile):
    """A finished calculation of another plugin is exit 204 naming it, not 205 "DFT calculation ... failed"."""
    from aiida.common.links import LinkType

    other = orm.CalcJobNode(computer=fake_code.computer, process_type='aiida.calculations:core.arithmetic.add')
    other.set_process_label('ArithmeticAddCalculation')
    other.set_process_state('finished')
    other.set_exit_status(0)
    other.store()
    result = orm.Int(3)
    result.base.links.add_incoming(other, link_type=LinkType.CREATE, link_label='sum')
    result.store()
    group = orm.Group(label='arithmetic-in-a-group').store()
    group.add_nodes([other, TrainingSetData.from_atoms(emt_structures(3, seed=48)).store()])
    _, node = run_get_node(PacemakerTrainingWorkChain, **fit_inputs(fake_code), group=orm.Str('arithmetic-in-a-group'))
    assert node.exit_status == PacemakerTrainingWorkChain.exit_codes.ERROR_UNSUPPORTED_NODES.status == 204
    assert node.exit_message.endswith(f'PW calculations: ArithmeticAddCalculation<{other.pk}>')


@pytest.mark.pacemaker
def test_a_real_fit_on_the_same_data_twice_trains_and_tests_on_distinct_structures(train_cu_al):
    """End to end: the 20 Cu-Al structures given twice are fitted as 20 (18 train, 2 test), none in both."""
    node = train_cu_al(training_sets={'a': train_cu_al.merged, 'b': train_cu_al.merged}, plots=orm.Bool(False))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    train, test = node.outputs.training_set, node.outputs.test_set
    assert (len(train), len(test)) == (18, 2) and keys_of(train).isdisjoint(keys_of(test))
    assert keys_of(train) | keys_of(test) == keys_of(train_cu_al.merged)
    assert train.base.attributes.get('merge_info')['duplicates_dropped'] == 20
    metrics = node.outputs.metrics
    assert (metrics['num_structures_train'], metrics['num_structures_test']) == (18, 2)


def test_the_active_set_tool_is_registered_at_creation_and_only_looked_up_in_the_step(
    session_localhost, aiida_profile, generate_workchain, tmp_path
):
    """Codes are never created inside a step: creating the workflow registers ``pace_activeset`` beside pacemaker
    (once), and the step's lookup finds it; a tool nobody registered is a clear error, not a new node."""
    from aiida_mlip_autopipe.codes import sibling_code

    fake_code = orm.InstalledCode(
        label='p', computer=session_localhost, filepath_executable=f'{tmp_path}/bin/pacemaker'
    ).store()
    data = TrainingSetData.from_atoms(emt_structures(12, seed=3)).store()
    inputs = {**fit_inputs(fake_code), 'training_sets': {'data': data}, 'build_active_set': orm.Bool(True)}
    expected = f'{tmp_path}/bin/pace_activeset'

    def registered() -> list:
        query = orm.QueryBuilder().append(orm.InstalledCode, filters={'attributes.filepath_executable': expected})
        return query.all(flat=True)

    assert registered() == []
    generate_workchain('mlip_autopipe.training', inputs)
    (code,) = registered()
    generate_workchain('mlip_autopipe.training', inputs)  # a second workflow finds it: still one code
    assert registered() == [code]
    assert sibling_code(fake_code, 'pace_activeset', create=False).pk == code.pk
    with pytest.raises(ValueError, match=f'no code of {tmp_path}/bin/python3'):
        sibling_code(fake_code, 'python3', create=False)
    other = orm.InstalledCode(label='mine', computer=fake_code.computer, filepath_executable='/x/pace_activeset')
    generate_workchain('mlip_autopipe.training', {**inputs, 'activeset_code': other.store()})
    assert registered() == [code]  # a given code: nothing registered
