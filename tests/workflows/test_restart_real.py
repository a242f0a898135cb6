"""Real runs that meet trouble: a walltime stop completed by continuation, a daemon restart during a fit."""

import time

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node, submit

from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation
from aiida_mlip_autopipe.parsers.pacemaker import parse_metrics_table
from aiida_mlip_autopipe.workflows.base import PacemakerBaseWorkChain
from tests.helpers import (
    DAEMON_CALL_TIMEOUT,
    FIT_OPTIONS,
    TINY_SETTINGS,
    basis_coefficients,
    calculations,
    wait_until_with_scheduler,
)

pytestmark = pytest.mark.pacemaker


def test_walltime_stop_is_completed_by_continuation(
    pacemaker_code, pacemaker_executable, cu_al_sets, freezing_pacemaker, tmp_path
):
    """The walltime monitor kills the first run mid-fit; the handler continues from the interim potential.

    The stop is an event of the run, not a time calibrated against this machine: the first run's pacemaker is frozen
    once it has logged iteration 10 (a fit that would outlast its walltime), and its job's recorded start is then
    dated back, so the walltime monitor stops it at its next poll; continuations run pacemaker unchanged.
    """
    training, test = cu_al_sets
    maxiter = 30
    settings = {
        'potential': {'functions': {'number_of_functions_per_element': 25}},
        'fit': {'maxiter': maxiter, 'options': {'gtol': 1e-14}},
        'backend': {'display_step': 50},
    }
    python = pacemaker_executable.read_text().splitlines()[0].removeprefix('#!').strip()
    bin_dir = tmp_path / 'bin'  # the job takes pace_yaml2yace beside the executable
    bin_dir.mkdir()
    (bin_dir / 'pace_yaml2yace').symlink_to(pacemaker_executable.parent / 'pace_yaml2yace')
    started = PacemakerCalculation.JOB_STARTED
    wrapper = bin_dir / 'pacemaker'
    wrapper.write_text(
        freezing_pacemaker(
            python,
            str(pacemaker_executable),
            after=10,
            before=f'pathlib.Path({started!r}).unlink(missing_ok=True)  # no start yet for the monitor',
            on_freeze=f'pathlib.Path({started!r}).write_text("0\\n")  # started in 1970: out of walltime',
        )
    )
    wrapper.chmod(0o755)
    code = orm.InstalledCode(
        label='pacemaker-frozen-after-10',
        computer=pacemaker_code.computer,
        filepath_executable=str(wrapper),
        default_calc_job_plugin='mlip_autopipe.pacemaker',
    ).store()
    pacemaker = {
        'code': code,
        'training_set': training,
        'test_set': test,
        'settings': orm.Dict(settings),
        'metadata': {'options': FIT_OPTIONS},
    }
    monitors = {
        'walltime': orm.Dict(
            {'entry_point': 'mlip_autopipe.walltime', 'kwargs': {'seconds': 3600}, 'minimum_poll_interval': 1}
        )
    }
    _, node = run_get_node(
        PacemakerBaseWorkChain, pacemaker={**pacemaker, 'monitors': monitors}, max_iterations=orm.Int(6)
    )
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    runs = calculations(node)
    first, last = runs[0], runs[-1]
    assert first.exit_status == 150 and first.exit_message.startswith('walltime exceeded')
    assert len(runs) == 2 and last.is_finished_ok
    # the stopped run kept its log and interim potential for diagnosis and continuation
    kept = set(first.outputs.retrieved.base.repository.list_object_names())
    assert {'log.txt', 'interim_potential_0.yaml', 'metrics.txt'} <= kept
    # no finished iteration was lost: the runs' iterations add up, each run starts where the last one stopped
    done = []
    for run in runs:
        table = parse_metrics_table(run.outputs.retrieved.base.repository.get_object_content('metrics.txt'))
        done.append(int(table['iter_num'][-1]))
        if run is not first:
            previous = parse_metrics_table(
                runs[runs.index(run) - 1].outputs.retrieved.base.repository.get_object_content('metrics.txt')
            )
            # it starts from the last interim potential: the loss of one of the last iterations logged (the kill
            # may fall between writing metrics.txt and the interim potential, so at most one iteration is redone)
            assert any(table['loss'][0] == pytest.approx(loss, rel=1e-6) for loss in previous['loss'][-2:]), (
                table['loss'][0],
                previous['loss'][-3:],
            )
            assert run.inputs.initial_potential.creator.process_label == 'extract_retrieved_file'
    # each continuation runs exactly the iterations that remained
    budgets = [run.inputs.settings['fit']['maxiter'] for run in runs]
    assert budgets[0] == maxiter
    for index in range(1, len(runs)):
        assert budgets[index] == max(1, budgets[index - 1] - done[index - 1])


@pytest.mark.daemon
def test_daemon_restart_during_a_fit(started_daemon_client, pacemaker_code, cu_al_sets, tiny_fit):
    """Stop the daemon while pacemaker runs, start it again: the fit finishes as an uninterrupted one."""
    training, test = cu_al_sets
    node = submit(
        PacemakerBaseWorkChain,
        pacemaker={
            'code': pacemaker_code,
            'training_set': training,
            'test_set': test,
            'settings': orm.Dict(TINY_SETTINGS),
            'metadata': {'options': FIT_OPTIONS},
        },
    )
    wait_until_with_scheduler(node)
    started_daemon_client.stop_daemon(wait=True, timeout=DAEMON_CALL_TIMEOUT)
    time.sleep(3)
    assert not node.is_terminated
    started_daemon_client.start_daemon(timeout=DAEMON_CALL_TIMEOUT)
    deadline = time.time() + 300
    while not node.is_terminated and time.time() < deadline:
        time.sleep(1)
    assert node.is_finished_ok, (node.process_state, node.exit_status, node.exit_message)
    assert len(calculations(node)) == 1
    reference, restarted = tiny_fit.outputs, node.outputs
    np.testing.assert_allclose(
        basis_coefficients(restarted.potential_yaml.get_content())[1],
        basis_coefficients(reference.potential_yaml.get_content())[1],
        rtol=1e-6,
        atol=1e-9,
    )
    for key in ('rmse_energy_train', 'rmse_forces_train', 'rmse_energy_test', 'rmse_forces_test', 'loss'):
        assert restarted.metrics[key] == pytest.approx(reference.metrics[key], rel=1e-6)
    assert restarted.metrics['iterations'] == reference.metrics['iterations']
