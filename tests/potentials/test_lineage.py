"""Lineage: which of a training set's ancestor jobs were DFT, decided by process type, never by a label."""

from __future__ import annotations

import io

import pytest
from aiida import orm
from aiida.common.links import LinkType

from aiida_mlip_autopipe.data.training_set import TrainingSetData
from aiida_mlip_autopipe.demo.emt import emt_structures
from aiida_mlip_autopipe.potentials.lineage import potential_lineage


def job(process_type: str, label: str, computer, caller: orm.WorkflowNode | None = None) -> orm.CalcJobNode:
    node = orm.CalcJobNode(computer=computer, process_type=process_type)
    node.set_process_label(label)
    node.set_option('resources', {'num_machines': 1})
    if caller is not None:
        node.base.links.add_incoming(caller, link_type=LinkType.CALL_CALC, link_label='pace_activeset')
    return node.store()


def created_by(creator: orm.ProcessNode, data: orm.Data, label: str = 'result') -> orm.Data:
    data.base.links.add_incoming(creator, link_type=LinkType.CREATE, link_label=label)
    return data.store()


@pytest.mark.parametrize('tool_label', ['ShellJob<pace_activeset@localhost>', 'ShellJob<my-activeset-tool@cluster>'])
def test_dft_ancestors_are_told_from_the_plugins_jobs_by_process_type(aiida_profile, session_localhost, tool_label):
    """pw.x counts as DFT; the plugin's own ShellJob (pace_activeset, whatever its code's label) does not."""
    workflow = orm.WorkflowNode(process_type='aiida.workflows:mlip_autopipe.training').store()
    shell = job('aiida.calculations:core.shell', tool_label, session_localhost, caller=workflow)
    pw = job('aiida.calculations:quantumespresso.pw', 'PwCalculation', session_localhost)
    users_shell = job('aiida.calculations:core.shell', 'ShellJob<pace_dft@cluster>', session_localhost)
    earlier_fit = job('aiida.calculations:mlip_autopipe.pacemaker', 'PacemakerCalculation', session_localhost)
    parts = [
        created_by(creator, TrainingSetData.from_atoms(emt_structures(2, seed=seed)))
        for seed, creator in enumerate((shell, pw, users_shell, earlier_fit))
    ]
    merge = orm.CalcFunctionNode(process_type='aiida.calculations:fake.merge')
    for index, part in enumerate(parts):
        merge.base.links.add_incoming(part, link_type=LinkType.INPUT_CALC, link_label=f'part_{index}')
    merge.store()
    training_set = created_by(merge, TrainingSetData.from_atoms(emt_structures(8, seed=9)))
    code = orm.InstalledCode(label='ace', computer=session_localhost, filepath_executable='/opt/ace/bin/pacemaker')
    fit = orm.CalcJobNode(computer=session_localhost, process_type='aiida.calculations:mlip_autopipe.pacemaker')
    fit.set_option('resources', {'num_machines': 1})
    fit.base.links.add_incoming(training_set, link_type=LinkType.INPUT_CALC, link_label='training_set')
    fit.base.links.add_incoming(code.store(), link_type=LinkType.INPUT_CALC, link_label='code')
    fit.store()
    potential = created_by(fit, orm.SinglefileData(io.BytesIO(b'elements: [Cu]\n'), filename='potential.yace'))

    lineage = potential_lineage(potential)
    # the user's own ShellJob (not called by the plugin) is counted like any other job that made data: as DFT
    assert sorted(node.pk for node in lineage.dft_calculations) == sorted([pw.pk, users_shell.pk])
