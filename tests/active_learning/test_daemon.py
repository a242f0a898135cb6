"""The loop under the daemon: submitted, the daemon stopped mid-loop (at the first exploration) and started again,
the loop finishes with one fit, exploration and labelling per iteration."""

from __future__ import annotations

import time

import pytest
from aiida import orm
from aiida.engine import submit

from aiida_mlip_autopipe.active_learning.lineage import iteration_counts, structure_lineage
from tests.active_learning.helpers import loop_builder
from tests.helpers import DAEMON_CALL_TIMEOUT

pytestmark = [pytest.mark.pacemaker, pytest.mark.daemon]


def wait_for(condition, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.5)
    pytest.fail(f'{what} did not happen within {timeout} s')


def called_with(node, label: str) -> list:
    return [link.node for link in node.base.links.get_outgoing().all() if link.link_label == label]


def test_daemon_restart_mid_loop_finishes_the_loop(started_daemon_client, pacemaker_code, cu_initial_set):
    node = submit(loop_builder(pacemaker_code, cu_initial_set, max_iterations=orm.Int(2)))
    wait_for(lambda: called_with(node, 'explore_iteration_01'), 300, 'the first exploration')
    started_daemon_client.stop_daemon(wait=True, timeout=DAEMON_CALL_TIMEOUT)
    time.sleep(2)
    assert not node.is_terminated
    started_daemon_client.start_daemon(timeout=DAEMON_CALL_TIMEOUT)
    wait_for(lambda: node.is_terminated, 600, 'the end of the loop')
    assert node.is_finished_ok, (node.process_state, node.exit_status, node.exit_message)
    rows = node.outputs.iterations.get_list()
    fits = [row['iteration'] for row in rows if 'training' in row]
    for iteration in range(1, len(rows)):
        assert len(called_with(node, f'explore_iteration_{iteration:02d}')) == 1
    for iteration in fits:
        assert len(called_with(node, f'train_iteration_{iteration:02d}')) == 1
    counts = iteration_counts(structure_lineage(node.outputs.training_set))
    assert {key: value for key, value in counts.items() if key} == {
        row['iteration']: row['added'] for row in rows if row.get('added')
    }
    labels = [child for child in node.called if child.process_label == 'label_with_emt']
    assert len(labels) == sum(row.get('selected', 0) + row.get('calibration', 0) for row in rows if 'training' in row)
