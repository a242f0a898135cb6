"""ExplorationParser on retrieved-file fixtures of real ``explore.py`` runs (and crafted malformed/missing summaries):
every outcome is success with all outputs or a named exit code, and no output is attached before all are built."""

import functools
import json
import shutil

import numpy as np
import pytest

from aiida_mlip_autopipe.calculations.exploration import PacemakerExplorationCalculation
from tests.helpers import FIXTURES


@pytest.fixture
def parse_exploration(parse_fixture):
    """Parse ``tests/parsers/fixtures/exploration/<name>`` (or any folder given as a path) with the parser."""
    return functools.partial(parse_fixture, entry_point='mlip_autopipe.exploration')


@pytest.mark.parametrize(
    ('name', 'label', 'fragment'),
    [
        # per_trajectory lists 2 trajectories, selected.npz has frames of trajectory 5: used to raise IndexError
        ('malformed_summary', 'ERROR_SUMMARY_MALFORMED', 'IndexError'),
        ('missing_output', 'ERROR_OUTPUT_MISSING', 'the exploration wrote no exploration.json'),
        # a real run whose active set was missing: explore.py's own error, in the exit message
        ('failed', 'ERROR_EXPLORATION_FAILED', 'RuntimeError: npz_load: Error! Unable to open file missing.asi!'),
    ],
)
def test_failed_malformed_or_missing_summary_gives_a_named_exit_code(parse_exploration, name, label, fragment):
    results, calcfunction = parse_exploration(name)
    assert calcfunction.exit_status == PacemakerExplorationCalculation.exit_codes[label].status, (
        calcfunction.exit_message
    )
    assert fragment in calcfunction.exit_message
    assert results == {}  # nothing attached: no summary or gamma without the selected structures


def test_output_exit_codes_invalidate_the_cache():
    for code in PacemakerExplorationCalculation.spec().exit_codes.values():
        if 300 <= code.status < 400:
            assert code.invalidates_cache, code.label
    assert PacemakerExplorationCalculation.exit_codes.ERROR_EXPLORATION_FAILED.invalidates_cache is False


SUMMARY_MUTATIONS = {
    'empty': lambda text: '',
    'truncated': lambda text: text[: len(text) // 2],
    'a list': lambda text: '[1, 2]',
    'no per_trajectory': lambda text: '{"selected": 3}',
    'gamma not a list': lambda text: text.replace('"gamma": [', '"gamma": 7, "x": [', 1),
    'trajectory without temperature': lambda text: text.replace('"temperature_K"', '"temp"', 1),
}


def fixture_copy(name: str, tmp_path):
    """A writable copy of the retrieved-file fixture ``name``, to alter one of its files."""
    folder = tmp_path / 'retrieved'
    shutil.copytree(FIXTURES / 'exploration' / name, folder)
    return folder


@pytest.mark.parametrize('mutation', list(SUMMARY_MUTATIONS))
def test_any_summary_gives_success_or_a_named_exit_code(parse_exploration, tmp_path, mutation):
    """Fuzz the summary of a successful run: the parser ends with one of the calculation's codes, never an exception,
    and attaches either every output or none."""
    folder = fixture_copy('success', tmp_path)
    summary = folder / 'exploration.json'
    summary.write_text(SUMMARY_MUTATIONS[mutation](summary.read_text()))
    results, calcfunction = parse_exploration(folder)
    assert not calcfunction.is_excepted, calcfunction.exception
    known = {code.status for code in PacemakerExplorationCalculation.exit_codes.values() if code.status >= 300}
    assert calcfunction.exit_status in known, (calcfunction.exit_status, calcfunction.exit_message)
    assert results == {}


#: selected.npz whose arrays disagree with each other (the parser indexed past the end of one: IndexError)
SELECTED_MUTATIONS = {
    'a cell fewer': lambda arrays: {**arrays, 'cells': arrays['cells'][:-1]},
    'more atoms than positions': lambda arrays: {**arrays, 'natoms': arrays['natoms'] + 1},
    'no numbers': lambda arrays: {key: value for key, value in arrays.items() if key != 'numbers'},
    'pbc of another shape': lambda arrays: {**arrays, 'pbc': arrays['pbc'][:, :2]},
}


@pytest.mark.parametrize('mutation', list(SELECTED_MUTATIONS))
def test_inconsistent_selected_structures_give_a_named_exit_code(parse_exploration, tmp_path, mutation):
    folder = fixture_copy('success', tmp_path)
    path = folder / PacemakerExplorationCalculation.SELECTED
    with np.load(path) as handle:
        arrays = SELECTED_MUTATIONS[mutation]({key: handle[key] for key in handle.files})
    with path.open('wb') as handle:
        np.savez(handle, **arrays)
    results, calcfunction = parse_exploration(folder)
    assert not calcfunction.is_excepted, calcfunction.exception
    assert calcfunction.exit_status == PacemakerExplorationCalculation.exit_codes.ERROR_OUTPUT_UNREADABLE.status, (
        calcfunction.exit_status,
        calcfunction.exit_message,
    )
    assert results == {}


def test_unreadable_calibration_attaches_nothing(parse_exploration, tmp_path):
    folder = fixture_copy('success', tmp_path)
    (folder / PacemakerExplorationCalculation.CALIBRATION).write_bytes(b'not an npz')
    results, calcfunction = parse_exploration(folder)
    assert calcfunction.exit_status == PacemakerExplorationCalculation.exit_codes.ERROR_OUTPUT_UNREADABLE.status
    assert results == {}


def test_a_status_file_that_is_not_text_is_a_named_failure(parse_exploration, tmp_path):
    """Bytes that are not UTF-8 in the job's status file (a disk or transfer fault) are a failed run, not a crash."""
    folder = fixture_copy('failed', tmp_path)
    (folder / PacemakerExplorationCalculation.STATUS).write_bytes(b'\xff\xfe1\n')
    results, calcfunction = parse_exploration(folder)
    assert calcfunction.exit_status == PacemakerExplorationCalculation.exit_codes.ERROR_EXPLORATION_FAILED.status
    assert results == {}


def test_success_attaches_all_outputs_and_each_selected_structure_its_origin(parse_exploration):
    results, node = parse_exploration('success')
    assert node.is_finished_ok, node.exit_message
    assert {'summary', 'gamma', 'selected'} <= set(results)
    summary = results['summary'].get_dict()
    written = json.loads((FIXTURES / 'exploration' / 'success' / 'exploration.json').read_text())
    assert summary['explored_steps'] == written['explored_steps'] == 1206
    assert summary['selected'] == written['selected'] == len(results['selected']) > 0
    assert 0 < summary['fraction_above_gamma_lo'] < 1
    gamma = results['gamma'].get_array('max_gamma')
    assert gamma.shape == (6, 201) and np.nanmax(gamma) == pytest.approx(summary['max_gamma'])
    for structure in results['selected'].values():
        origin = structure.base.attributes.get('exploration')
        assert 1.5 <= origin['gamma'] < 10.0
        assert origin['temperature_K'] in (600.0, 1200.0)
        steps = gamma[origin['trajectory']]
        assert steps[origin['step']] == pytest.approx(origin['gamma'])  # the grade recorded at that step
        assert len(origin['gamma_per_atom']) == 4 and max(origin['gamma_per_atom']) == pytest.approx(origin['gamma'])
        assert structure.get_formula() == 'Cu4'
