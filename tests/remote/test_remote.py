"""Pacemaker on a cluster: over SSH into another user's account, through Slurm and ``core.direct``."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node, submit

from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation
from aiida_mlip_autopipe.workflows.base import PacemakerBaseWorkChain
from tests.helpers import (
    DAEMON_CALL_TIMEOUT,
    TINY_SETTINGS,
    basis_coefficients,
    calculations,
    fit_cu_al,
    wait_until_with_scheduler,
)

pytestmark = [pytest.mark.pacemaker, pytest.mark.remote]


def test_remote_home_is_hidden_from_the_aiida_side(cluster):
    """What the remote tests prove is done through the transport: the remote pacemaker is not visible here."""
    assert not os.path.exists(cluster['CLUSTER_PACEMAKER'])


def test_quick_start_fit_on_slurm_equals_the_local_fit(slurm_pacemaker, cu_al_sets, tiny_fit):
    """The tiny fit through Slurm, threads from the computer: the same potential as the local run."""
    node = fit_cu_al(slurm_pacemaker, cu_al_sets, options=None)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    assert node.get_job_id().isdigit()  # a Slurm job id
    script = node.base.repository.get_object_content('_aiidasubmit.sh')
    assert '#SBATCH --ntasks-per-node=2' in script and 'export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"' in script
    np.testing.assert_allclose(
        basis_coefficients(node.outputs.potential_yaml.get_content())[1],
        basis_coefficients(tiny_fit.outputs.potential_yaml.get_content())[1],
        rtol=1e-6,
        atol=1e-9,
    )
    assert node.outputs.metrics['rmse_forces_test'] == pytest.approx(tiny_fit.outputs.metrics['rmse_forces_test'])


def test_training_workflow_with_active_set_over_ssh(train_cu_al, ssh_pacemaker):
    """``core.ssh`` + ``core.direct``: the training workflow and ``pace_activeset`` beside the remote pacemaker."""
    node = train_cu_al(code=ssh_pacemaker, options=orm.Dict({}), build_active_set=orm.Bool(True))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    shelljob = node.outputs.active_set.creator
    assert shelljob.computer.label == 'cluster-direct' and shelljob.is_finished_ok
    assert shelljob.inputs.code.get_executable().as_posix().endswith('/pace-env/bin/pace_activeset')
    atoms = node.outputs.training_set.get_atoms()[0]
    from aiida_mlip_autopipe import get_calculator

    atoms.calc = get_calculator(node.outputs.potential, active_set=node.outputs.active_set)
    atoms.get_potential_energy()
    assert np.max(atoms.calc.results['gamma']) <= 1.5


def test_facade_trains_on_the_remote_computer(slurm_computer, cluster, tmp_path):
    """``TrainingConfig(computer=..., pacemaker_executable=<a path there>)``: checked through the transport."""
    from ase.db import connect

    from aiida_mlip_autopipe import PacemakerTrainer, TrainingConfig, TrainingError
    from aiida_mlip_autopipe.demo.emt import emt_structures

    database = tmp_path / 'dft.db'
    with connect(database) as db:
        for atoms in emt_structures(22, repeat=2, seed=31):
            db.write(atoms)

    def config(**extra):
        values = {
            'pacemaker_executable': cluster['CLUSTER_PACEMAKER'],
            'data_source_db': database,
            'delta_learning': False,
            'min_structures': 20,
            'settings': TINY_SETTINGS,
            'output_dir': tmp_path / 'potentials',
            'computer': slurm_computer.label,
        }
        return TrainingConfig(**{**values, **extra})

    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(TrainingError, match=r"/nowhere/bin/pacemaker does not exist on computer 'cluster-slurm'"):
        PacemakerTrainer(config(pacemaker_executable='/nowhere/bin/pacemaker')).train()
    with pytest.raises(TrainingError, match=r'must be an absolute path on computer'):
        PacemakerTrainer(config(pacemaker_executable='pace-env/bin/pacemaker')).train()
    with pytest.raises(TrainingError, match=r'is not executable'):
        PacemakerTrainer(config(pacemaker_executable=f'{cluster["CLUSTER_HOME"]}/pace-env/pyvenv.cfg')).train()
    assert orm.QueryBuilder().append(orm.Node).count() == before  # nothing imported or stored

    path = PacemakerTrainer(config()).train()
    assert path.is_file() and path.suffix == '.yace'
    calculation = (
        orm.QueryBuilder()
        .append(PacemakerCalculation, filters={'attributes.exit_status': 0}, project='*')
        .order_by({PacemakerCalculation: {'id': 'desc'}})
        .first(flat=True)
    )
    code = calculation.inputs.code  # the façade's code (or an existing one for the same path on that computer)
    assert code.computer.uuid == slurm_computer.uuid and str(code.get_executable()) == cluster['CLUSTER_PACEMAKER']
    assert calculation.get_option('resources') == {'num_machines': 1, 'num_mpiprocs_per_machine': 2}


def test_walltime_monitor_measures_on_the_remote_clock(ssh_computer, cluster):
    """The monitor reads the job's start as the job machine wrote it, and that machine's clock; a queued job
    (no start written yet) has used none of its walltime."""
    from aiida_mlip_autopipe.calculations.monitors import walltime

    workdir = f'{cluster["CLUSTER_WORKDIR"]}/monitor-test'
    node = orm.CalcJobNode(computer=ssh_computer)
    node.set_remote_workdir(workdir)
    with ssh_computer.get_transport() as transport:
        transport.makedirs(workdir, ignore_existing=True)
        marker = f'{workdir}/{PacemakerCalculation.JOB_STARTED}'
        transport.exec_command_wait(f'rm -f {marker}')
        assert walltime(node, transport, 5) is None  # queued: not started
        transport.exec_command_wait(f'echo $(( $(date +%s) - 100 )) > {marker}')
        message = walltime(node, transport, 50)
        assert message is not None and message.startswith('walltime exceeded: the job ran 10')
        assert walltime(node, transport, 500) is None


def submit_when_started(daemon_client, process, **inputs):

    node = submit(process, **inputs)
    wait_until_with_scheduler(node)
    return node


def run_story(node) -> str:
    """A workflow's reports and each calculation's exit status, message and scheduler stderr, for a failure message."""
    reports = [log.message for log in orm.Log.collection.get_logs_for(node)]
    lines = [f'{node.process_label}<{node.pk}> [{node.exit_status}]: {reports}']
    for run in calculations(node):
        retrieved = run.outputs.retrieved if 'retrieved' in run.outputs else None
        names = retrieved.base.repository.list_object_names() if retrieved is not None else []
        stderr = (
            retrieved.base.repository.get_object_content('_scheduler-stderr.txt')
            if '_scheduler-stderr.txt' in names
            else '(none)'
        )
        lines.append(f'{run.pk} [{run.exit_status}] {run.exit_message}; scheduler stderr: {stderr.strip()[-400:]}')
    return '\n'.join(lines)


def await_all(nodes, timeout):
    deadline = time.time() + timeout
    while not all(node.is_terminated for node in nodes) and time.time() < deadline:
        time.sleep(1)
    for node in nodes:
        assert node.is_finished_ok, (node.pk, node.process_state, node.exit_status, node.exit_message)


@pytest.mark.daemon
def test_daemon_restart_during_a_slurm_fit(started_daemon_client, slurm_pacemaker, cu_al_sets, tiny_fit):
    """The daemon stopped while Slurm runs the job and started again: the fit finishes as an uninterrupted one."""
    training, test = cu_al_sets
    node = submit_when_started(
        started_daemon_client,
        PacemakerBaseWorkChain,
        pacemaker={
            'code': slurm_pacemaker,
            'training_set': training,
            'test_set': test,
            'settings': orm.Dict(TINY_SETTINGS),
        },
    )
    started_daemon_client.stop_daemon(wait=True, timeout=DAEMON_CALL_TIMEOUT)
    time.sleep(3)
    assert not node.is_terminated
    started_daemon_client.start_daemon(timeout=DAEMON_CALL_TIMEOUT)
    await_all([node], 600)  # the restarted daemon takes the job over; slow on a loaded machine
    assert len(calculations(node)) == 1
    np.testing.assert_allclose(
        basis_coefficients(node.outputs.potential_yaml.get_content())[1],
        basis_coefficients(tiny_fit.outputs.potential_yaml.get_content())[1],
        rtol=1e-6,
        atol=1e-9,
    )


#: Python line of the wrapper: the Slurm job cuts its own time limit to one minute (a user may shorten a job)
SHORTEN_TIME_LIMIT = "subprocess.run(['scontrol', 'update', 'JobId=' + os.environ['SLURM_JOB_ID'], 'TimeLimit=1'])"


@pytest.mark.daemon
def test_slurm_time_limit_stop_is_continued_to_the_end(
    started_daemon_client, slurm_computer, ssh_computer, cluster, cu_al_sets, freezing_pacemaker, tmp_path
):
    """Slurm cancels the job at its --time; the base workflow continues the fit to the end. Twice at once: with
    Slurm's line alone in the scheduler's stderr, and after a line printed before it (a ``module load``
    message), which aiida-core alone does not recognise without Slurm accounting.

    The stop is an event of the run, not a time calibrated against this machine: the first job's pacemaker is frozen
    once it has logged iteration 5, and the job then cuts its own time limit to one minute (``scontrol update``, which
    a user may do to shorten a job), so Slurm cancels it DUE TO TIME LIMIT after it made progress and before its end.
    """
    training, test = cu_al_sets
    executable = cluster['CLUSTER_PACEMAKER']
    bin_dir = f'{cluster["CLUSTER_WORKDIR"]}/pacemaker-frozen-after-5'
    with ssh_computer.get_transport() as transport:
        _, shebang, _ = transport.exec_command_wait(f'head -n 1 {executable}')
        wrapper = tmp_path / 'pacemaker'
        wrapper.write_text(
            freezing_pacemaker(
                shebang.strip().removeprefix('#!').strip(),
                executable,
                after=5,
                on_freeze=SHORTEN_TIME_LIMIT,
            )
        )
        transport.makedirs(bin_dir, ignore_existing=True)
        transport.putfile(str(wrapper), f'{bin_dir}/pacemaker')
        transport.chmod(f'{bin_dir}/pacemaker', 0o755)
        yace = f'{executable.rsplit("/", 1)[0]}/pace_yaml2yace'
        transport.exec_command_wait(f'ln -sf {yace} {bin_dir}/pace_yaml2yace')
    codes = [
        orm.InstalledCode(
            label=label,
            computer=slurm_computer,
            filepath_executable=f'{bin_dir}/pacemaker',
            default_calc_job_plugin='mlip_autopipe.pacemaker',
            **extra,
        ).store()
        for label, extra in (
            ('pacemaker-frozen-plain', {}),
            ('pacemaker-frozen-module', {'prepend_text': 'echo "Loading module pacemaker/0.4" >&2'}),
        )
    ]
    maxiter = 15  # the stop is an event (iteration 5), not a time: a small fit serves
    settings = {
        'potential': {'functions': {'number_of_functions_per_element': 20}},
        'fit': {'maxiter': maxiter, 'loss': {'kappa': 0.3}, 'options': {'gtol': 1e-14}},
        'backend': {'display_step': 50},
    }
    one_thread = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}}
    nodes = [
        submit_when_started(
            started_daemon_client,
            PacemakerBaseWorkChain,
            pacemaker={
                'code': code,
                'training_set': training,
                'test_set': test,
                'settings': orm.Dict(settings),
                'metadata': {'options': {**one_thread, 'max_wallclock_seconds': 1800}},
            },
            max_iterations=orm.Int(10),
        )
        for code in codes
    ]
    await_all(nodes, 900)
    for node in nodes:
        runs = calculations(node)
        story = run_story(node)  # every assertion says what happened, for a failure on CI
        first = runs[0]
        assert first.exit_status == PacemakerCalculation.exit_codes.ERROR_OUT_OF_WALLTIME.status, story
        stderr = first.outputs.retrieved.base.repository.get_object_content('_scheduler-stderr.txt')
        assert 'DUE TO TIME LIMIT' in stderr, story
        assert len(runs) == 2 and runs[-1].is_finished_ok, story
        budgets = [run.inputs.settings['fit']['maxiter'] for run in runs]
        assert budgets[0] == maxiter and budgets[1] <= maxiter - 5, (budgets, story)
        assert runs[1].inputs.initial_potential.creator.process_label == 'extract_retrieved_file'
    plain_stderr, chatty_stderr = (
        calculations(node)[0].outputs.retrieved.base.repository.get_object_content('_scheduler-stderr.txt')
        for node in nodes
    )
    assert 'Loading module' not in plain_stderr
    chatty_lines = chatty_stderr.splitlines()
    slurm_line = next(index for index, line in enumerate(chatty_lines) if 'DUE TO TIME LIMIT' in line)
    assert 'Loading module pacemaker/0.4' in chatty_lines[:slurm_line]  # printed before Slurm's line


@pytest.mark.daemon
def test_six_fits_at_once_with_two_daemon_workers(started_daemon_client, slurm_pacemaker, cu_al_sets):
    """Six small fits submitted at once to Slurm, two daemon workers: all six finish, nothing is lost or mixed."""

    training, test = cu_al_sets
    started_daemon_client.increase_workers(1, timeout=DAEMON_CALL_TIMEOUT)
    try:
        nodes = [
            submit(
                PacemakerCalculation,
                code=slurm_pacemaker,
                training_set=training,
                test_set=test,
                settings=orm.Dict({**TINY_SETTINGS, 'seed': seed}),
                metadata={'options': {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}}},
            )
            for seed in range(6)
        ]
        await_all(nodes, 600)
    finally:  # back to one worker, the daemon kept running (a restart races the next submit for its queue)
        started_daemon_client.decrease_workers(1, timeout=DAEMON_CALL_TIMEOUT, wait=True)
    assert len({node.get_job_id() for node in nodes}) == 6
    potentials = [node.outputs.potential_yaml for node in nodes]
    assert len({potential.uuid for potential in potentials}) == 6
    for node in nodes:  # each job's outputs are its own: its log names the seed it was given
        log = node.outputs.retrieved.base.repository.get_object_content('log.txt')
        assert f'Set numpy random seed to {node.inputs.settings["seed"]}\n' in log


def test_active_learning_loop_on_slurm(slurm_pacemaker):
    """The loop with every job on the Slurm computer: fits, pace_activeset and the exploration (the Python beside
    the remote pacemaker); EMT labels here. One iteration."""
    from aiida_mlip_autopipe.active_learning.lineage import iteration_counts, structure_lineage
    from aiida_mlip_autopipe.data.training_set import TrainingSetData
    from aiida_mlip_autopipe.demo.emt import emt_structures
    from tests.active_learning.helpers import loop_builder

    initial = TrainingSetData.from_atoms(emt_structures(20, elements=('Cu',), seed=3)).store()
    builder = loop_builder(slurm_pacemaker, initial, max_iterations=orm.Int(1))
    builder.training.options = orm.Dict({'resources': {'num_machines': 1}})
    _, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    exploration = next(child for child in node.called if child.process_label == 'PacemakerExplorationCalculation')
    assert exploration.computer.label == 'cluster-slurm' and exploration.get_job_id() is not None
    assert exploration.inputs.code.get_executable().as_posix().endswith('/pace-env/bin/python3')
    row = node.outputs.iterations.get_list()[1]
    assert row['explored_steps'] > 100 and row['labelled'] > 0
    # the labels added to the training data: the selected and the calibration frames below gamma_lo
    assert iteration_counts(structure_lineage(node.outputs.training_set))[1] == row['added'] >= row['labelled']
