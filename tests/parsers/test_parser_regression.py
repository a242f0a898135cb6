"""Parser outputs of the retrieved-file fixtures against stored results (pytest-regressions' ``data_regression``).

A change in what the parser returns for a real retrieved folder shows as a diff of the YAML beside this file
(``test_parser_regression/``); regenerate it deliberately with ``pytest --force-regen``.
"""

from __future__ import annotations

import pytest


def summary(results: dict, calcfunction) -> dict:
    """What the parse produced, in plain data: exit status and message, and each output's content."""
    from aiida import orm

    data: dict = {'exit_status': calcfunction.exit_status, 'exit_message': calcfunction.exit_message, 'outputs': {}}
    for label, node in sorted(results.items()):
        if isinstance(node, dict):  # an output namespace (the exploration's selected structures)
            data['outputs'][label] = {name: structure_summary(item) for name, item in sorted(node.items())}
            continue
        attributes = node.base.attributes.all
        if isinstance(node, orm.Dict):
            data['outputs'][label] = node.get_dict()
        elif isinstance(node, orm.SinglefileData):  # a potential file: its bytes are pacemaker's, checked elsewhere
            content = node.get_content(mode='rb')
            attributes = {key: value for key, value in attributes.items() if key != 'filename'}
            data['outputs'][label] = {'filename': node.filename, 'bytes': len(content), 'attributes': attributes}
        else:  # ArrayData: the arrays themselves (attributes hold their shapes)
            arrays = {name: node.get_array(name).tolist() for name in sorted(node.get_arraynames())}
            data['outputs'][label] = {'arrays': arrays, 'attributes': attributes}
    return data


def structure_summary(structure) -> dict:
    """A selected structure in plain data: its formula, cell, positions and the attributes it carries."""
    return {
        'formula': structure.get_formula(),
        'cell': structure.cell,
        'positions': [site.position for site in structure.sites],
        'attributes': {key: value for key, value in structure.base.attributes.all.items() if key == 'exploration'},
    }


@pytest.mark.parametrize('test_name', ['success_maxiter', 'early_converged', 'success_reference_energy'])
def test_pacemaker_parser_outputs(parse_fixture, data_regression, test_name):
    results, calcfunction = parse_fixture(test_name)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    data_regression.check(summary(results, calcfunction))


@pytest.mark.parametrize('test_name', ['nan_loss', 'killed', 'no_status', 'failed_typo_pot', 'yace_failed'])
def test_pacemaker_parser_failures(parse_fixture, data_regression, test_name):
    results, calcfunction = parse_fixture(test_name)
    assert not calcfunction.is_finished_ok
    data_regression.check(summary(results, calcfunction))


@pytest.mark.parametrize('test_name', ['success', 'failed', 'malformed_summary'])
def test_exploration_parser_outputs(parse_fixture, data_regression, test_name):
    results, calcfunction = parse_fixture(test_name, entry_point='mlip_autopipe.exploration')
    data_regression.check(summary(results, calcfunction))
