"""PacemakerBaseWorkChain: the restart handlers, called directly on crafted failed nodes (aiida-qe's pattern)."""

import io
import shutil

import pytest
from aiida import orm
from aiida.common import AttributeDict, LinkType
from aiida.engine import ProcessState

from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation
from aiida_mlip_autopipe.workflows.base import PacemakerBaseWorkChain
from tests.helpers import FIXTURES

SUCCESS = FIXTURES / 'pacemaker' / 'success_maxiter'


@pytest.fixture
def failed_base_workchain(fake_code, cu_set, generate_workchain, generate_calc_job_node, tmp_path):
    """A ``PacemakerBaseWorkChain`` after ``setup()``, whose last child failed with ``exit_code`` and retrieved
    ``retrieved_files`` of the ``success_maxiter`` fixture."""

    def factory(exit_code=None, settings=None, retrieved_files=(), exit_message=None, **base_inputs):
        inputs = {'code': fake_code, 'training_set': cu_set}
        if settings is not None:
            inputs['settings'] = orm.Dict(settings)
        base_inputs = {name: orm.Str(value) for name, value in base_inputs.items()}
        process = generate_workchain('mlip_autopipe.pacemaker.base', {'pacemaker': inputs, **base_inputs})
        process.setup()
        folder = tmp_path / f'retrieved_{len(list(tmp_path.iterdir()))}'
        folder.mkdir()
        for name in retrieved_files:
            shutil.copy(SUCCESS / name, folder / name)
        node = generate_calc_job_node('mlip_autopipe.pacemaker', folder)
        node.set_process_state(ProcessState.FINISHED)
        if exit_code is not None:
            node.set_exit_status(exit_code.status)
            node.set_exit_message(exit_message or exit_code.message)
        process.ctx.children = [node]
        process.ctx.iteration = 1
        return process, node

    return factory


CODES = PacemakerCalculation.exit_codes


@pytest.mark.parametrize('exit_code', [CODES.ERROR_OUT_OF_WALLTIME, CODES.ERROR_SCHEDULER_OUT_OF_WALLTIME])
def test_out_of_walltime_continues_from_the_interim_potential(failed_base_workchain, exit_code):
    process, node = failed_base_workchain(
        exit_code, settings={'fit': {'maxiter': 100}}, retrieved_files=('interim_potential_0.yaml', 'metrics.txt')
    )
    report = process.handle_out_of_walltime(node)
    assert report.do_break and report.exit_code.status == 0
    inputs = process.ctx.inputs
    assert inputs.settings['fit']['maxiter'] == 70  # 30 of 100 iterations were done (metrics.txt)
    potential = inputs.initial_potential
    assert potential.filename == 'interim_potential_0.yaml'
    assert potential.get_content() == (SUCCESS / 'interim_potential_0.yaml').read_text()
    assert potential.creator.process_label == 'extract_retrieved_file'  # lineage: taken from the retrieved files
    assert process.inspect_process().status == 0  # restart, not abort


def test_monitor_walltime_kill_is_handled_but_other_monitor_stops_are_not(failed_base_workchain):
    process, node = failed_base_workchain(
        CODES.STOPPED_BY_MONITOR,
        exit_message='walltime exceeded: the job ran 31 s, longer than the 30 s allowed',
        retrieved_files=('interim_potential_0.yaml', 'metrics.txt'),
    )
    assert process.handle_out_of_walltime(node).do_break
    assert process.ctx.inputs.settings['fit']['maxiter'] == 70  # default maxiter 100
    process, node = failed_base_workchain(CODES.STOPPED_BY_MONITOR, exit_message='some other monitor')
    assert process.handle_out_of_walltime(node) is None


@pytest.mark.parametrize('retrieved_files', [(), ('interim_potential_0.yaml',)])
def test_out_of_walltime_before_the_first_iteration_stops_the_workflow(failed_base_workchain, retrieved_files):
    """No iteration done: the same walltime would stop the job at the same point, so no futile continuation."""
    process, node = failed_base_workchain(
        CODES.ERROR_OUT_OF_WALLTIME, settings={'fit': {'maxiter': 10}}, retrieved_files=retrieved_files
    )
    report = process.handle_out_of_walltime(node)
    assert report.do_break and report.exit_code.status == 502
    assert report.exit_code.message.startswith(f'PacemakerCalculation<{node.pk}> ran out of walltime before its first')
    assert 'initial_potential' not in process.ctx.inputs


def test_killed_halves_the_batch_size(failed_base_workchain):
    process, node = failed_base_workchain(
        CODES.ERROR_PACEMAKER_KILLED,
        settings={'backend': {'batch_size': 50}},
        retrieved_files=('interim_potential_0.yaml', 'metrics.txt'),
    )
    report = process.handle_out_of_memory(node)
    assert report.do_break and report.exit_code.status == 0
    assert process.ctx.inputs.settings['backend']['batch_size'] == 25
    assert 'initial_potential' in process.ctx.inputs
    process, node = failed_base_workchain(CODES.ERROR_PACEMAKER_KILLED)
    process.handle_out_of_memory(node)
    assert process.ctx.inputs.settings['backend']['batch_size'] == 5  # from pacemaker's default 10
    process, node = failed_base_workchain(CODES.ERROR_PACEMAKER_KILLED, settings={'backend': {'batch_size': 1}})
    report = process.handle_out_of_memory(node)
    assert report.exit_code.status == PacemakerBaseWorkChain.exit_codes.ERROR_OUT_OF_MEMORY_AT_MINIMUM_BATCH.status


BASE_CODES = PacemakerBaseWorkChain.exit_codes


def test_the_base_workflow_declares_its_own_exit_codes():
    """Never a calculation's number as its own: 310 + the restart codes of aiida-core + 501/502, nothing shared."""
    own = {code.status: label for label, code in BASE_CODES.items()}
    assert own[310] == 'ERROR_UNRECOVERABLE_FAILURE' and own[502] == 'ERROR_OUT_OF_WALLTIME_WITHOUT_PROGRESS'
    assert own[401] == 'ERROR_MAXIMUM_ITERATIONS_EXCEEDED' and own[402] == 'ERROR_UNHANDLED_FAILURE'
    calculation = {code.status for code in CODES.values()}
    assert not ({310, 501, 502} & calculation)


def test_an_unrecoverable_failure_is_named_by_the_base_workflows_own_code(failed_base_workchain):
    process, node = failed_base_workchain(
        CODES.ERROR_PACEMAKER_FAILED, exit_message='pacemaker exited with status 1: KeyError: ndensity'
    )
    result = process.inspect_process()
    assert result.status == BASE_CODES.ERROR_UNRECOVERABLE_FAILURE.status == 310
    assert result.message == (
        f'PacemakerCalculation<{node.pk}> failed with exit code 410 (ERROR_PACEMAKER_FAILED): '
        'pacemaker exited with status 1: KeyError: ndensity'
    )


def test_a_dataset_conversion_failure_no_longer_reads_as_maximum_iterations(failed_base_workchain):
    """The calculation's 401 used to come out of the base workflow as 401, aiida-core's 'maximum iterations'."""
    process, _ = failed_base_workchain(CODES.ERROR_DATASET_CONVERSION_FAILED, exit_message='no pandas')
    result = process.inspect_process()
    assert result.status == 310 and '401 (ERROR_DATASET_CONVERSION_FAILED): no pandas' in result.message


@pytest.mark.parametrize('exit_code', [CODES.ERROR_OUTPUT_LOG_MISSING, CODES.ERROR_SCHEDULER_NODE_FAILURE])
def test_other_failures_are_left_to_on_unhandled_failure(failed_base_workchain, exit_code):
    """No catch-all handler: aiida-core's policy applies (default abort with 402; restart_once restarts)."""
    process, _ = failed_base_workchain(exit_code)
    assert process.inspect_process() == BASE_CODES.ERROR_UNHANDLED_FAILURE
    process, _ = failed_base_workchain(exit_code, on_unhandled_failure='restart_once')
    assert process.inspect_process() is None  # restarted once


def test_scheduler_out_of_memory_halves_the_batch_size(failed_base_workchain):
    process, _ = failed_base_workchain(CODES.ERROR_SCHEDULER_OUT_OF_MEMORY, settings={'backend': {'batch_size': 8}})
    assert process.inspect_process().status == 0  # handled: restart
    assert process.ctx.inputs.settings['backend']['batch_size'] == 4


def test_a_crash_by_another_signal_is_not_retried_as_memory(failed_base_workchain):
    """Signal 11 (pacemaker segfaults on empty radparameters) is a crash: not retried with a smaller batch."""
    message = 'pacemaker crashed with signal 11 (SIGSEGV); not a memory problem, so it is not retried.'
    process, _ = failed_base_workchain(CODES.ERROR_PACEMAKER_CRASHED, exit_message=message)
    result = process.inspect_process()
    assert result.status == 310 and '431 (ERROR_PACEMAKER_CRASHED)' in result.message and 'SIGSEGV' in result.message
    assert 'settings' not in process.ctx.inputs or 'backend' not in process.ctx.inputs.settings.get_dict()


def test_success_is_not_touched(failed_base_workchain):
    process, node = failed_base_workchain(None)
    node.set_exit_status(0)
    assert process.inspect_process() is None
    assert isinstance(process.ctx.inputs, AttributeDict)


def test_interim_potential_bytes_are_kept(failed_base_workchain):
    process, node = failed_base_workchain(
        CODES.ERROR_OUT_OF_WALLTIME, retrieved_files=('interim_potential_0.yaml', 'metrics.txt')
    )
    process.handle_out_of_walltime(node)
    content = process.ctx.inputs.initial_potential.get_content(mode='rb')
    assert io.BytesIO(content).read() == (SUCCESS / 'interim_potential_0.yaml').read_bytes()
    assert process.ctx.inputs.settings['fit']['maxiter'] == 70  # 30 of the default 100 iterations done


@pytest.mark.parametrize(
    ('cut', 'fragment'),
    [
        (lambda text: '', 'is not a complete potential (0 bytes'),  # as seen: a Slurm time-limit kill at the write
        (lambda text: text[: len(text) // 2].rsplit('\n', 1)[0] + '\n', 'of the 20 functions'),  # cut at a line end
    ],
)
def test_a_cut_off_interim_potential_is_not_continued(failed_base_workchain, tmp_path, cut, fragment):
    """A kill during pacemaker's rewrite of the interim potential: the stopped job runs again as it was given."""
    process, node = failed_base_workchain(
        CODES.ERROR_OUT_OF_WALLTIME,
        settings={'fit': {'maxiter': 100}},
        retrieved_files=('metrics.txt', 'log.txt'),
    )
    text = (SUCCESS / 'interim_potential_0.yaml').read_text()
    retrieved = node.outputs.retrieved
    # the retrieved folder is stored; a fresh calculation node gets the cut-off copy
    folder = tmp_path / 'retrieved'
    folder.mkdir()
    for name in ('metrics.txt', 'log.txt'):
        (folder / name).write_bytes(retrieved.base.repository.get_object_content(name, mode='rb'))
    (folder / 'interim_potential_0.yaml').write_text(cut(text))
    stopped = orm.CalcJobNode(computer=node.computer, process_type=node.process_type)
    stopped.set_process_label('PacemakerCalculation')
    stopped.set_option('resources', {'num_machines': 1})
    stopped.store()
    copy = orm.FolderData(tree=folder)
    copy.base.links.add_incoming(stopped, link_type=LinkType.CREATE, link_label='retrieved')
    copy.store()
    stopped.set_process_state(ProcessState.FINISHED)
    stopped.set_exit_status(CODES.ERROR_OUT_OF_WALLTIME.status)
    process.ctx.children = [stopped]
    process.handle_out_of_walltime(stopped)
    assert 'initial_potential' not in process.ctx.inputs  # not continued from the cut-off file
    assert process.ctx.inputs.settings['fit']['maxiter'] == 100  # the stopped job's own budget, again
    reports = [log.message for log in orm.Log.collection.get_logs_for(process.node)]
    assert any(fragment in message and 'running the stopped job again' in message for message in reports), reports
