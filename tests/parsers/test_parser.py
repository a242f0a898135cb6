"""PacemakerParser on retrieved-file fixtures from real pacemaker runs (and crafted NaN/kill/missing cases)."""

import re

import numpy as np
import pytest

from aiida_mlip_autopipe.parsers.pacemaker import last_error_line, parse_metrics_table
from tests.helpers import FIXTURES


def final_block_rmse(log: str) -> list[tuple[float, float]]:
    """The RMSE rows (energy meV/at, force meV/A) of the last FIT STATS and TEST STATS blocks in pacemaker's log."""
    rows = re.findall(r'RMSE:\s+([0-9.]+)\s+[0-9.]+\s+([0-9.]+)', log)
    return [(float(e), float(f)) for e, f in rows]


def test_success_that_reached_maxiter(parse_fixture):
    results, calcfunction = parse_fixture('success_maxiter')
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    assert set(results) == {'metrics', 'learning_curve', 'potential', 'potential_yaml'}
    metrics = results['metrics'].get_dict()
    assert metrics['rmse_energy_train'] == pytest.approx(3.4329780010182134)
    assert metrics['rmse_forces_train'] == pytest.approx(30.29220793920265)
    assert metrics['rmse_energy_test'] == pytest.approx(2.3144857899838407)
    assert metrics['rmse_forces_test'] == pytest.approx(34.97238612871019)
    assert metrics['loss'] == pytest.approx(0.00036891918217568946)
    assert metrics['iterations'] == 30
    assert (metrics['num_functions'], metrics['num_parameters']) == (20, 103)
    assert metrics['fit_time'] == 36.0
    assert metrics['pacemaker_version'] == '0.4.0rc1'
    assert metrics['optimizer_converged'] is False
    assert metrics['num_structures_train'] == 36 and metrics['num_structures_test'] == 4
    # the metrics agree with pacemaker's own log (its last train and test blocks print two decimals)
    log = (FIXTURES / 'pacemaker' / 'success_maxiter' / 'log.txt').read_text()
    *_, (train_e, train_f), (test_e, test_f) = final_block_rmse(log)
    assert round(metrics['rmse_energy_train'], 2) == train_e and round(metrics['rmse_forces_train'], 2) == train_f
    assert round(metrics['rmse_energy_test'], 2) == test_e and round(metrics['rmse_forces_test'], 2) == test_f

    potential = results['potential']
    assert potential.filename == 'output_potential.yace'
    assert potential.get_content().startswith('elements: [Cu]')
    attributes = potential.base.attributes.all
    assert attributes['elements'] == ['Cu'] and attributes['cutoff'] == 5.0 and attributes['num_functions'] == 20
    assert attributes['rmse_forces_train'] == pytest.approx(30.29220793920265)
    assert attributes['pacemaker_version'] == '0.4.0rc1'
    assert results['potential_yaml'].filename == 'output_potential.yaml'

    curve = results['learning_curve']
    assert curve.get_array('iteration').tolist() == list(range(31))
    assert curve.get_array('test_iteration').tolist() == [0, 10, 20, 30, 31]
    assert curve.get_array('rmse_forces')[-1] == pytest.approx(metrics['rmse_forces_train'])
    assert curve.base.attributes.get('units')['rmse_energy'] == 'meV/atom'


def test_early_converged_fit(parse_fixture):
    results, calcfunction = parse_fixture('early_converged')
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    metrics = results['metrics'].get_dict()
    assert metrics['optimizer_converged'] is True
    assert metrics['optimizer_message'] == 'Optimization terminated successfully.'
    assert metrics['iterations'] == 27
    predictions = results['test_predictions']
    energy, predicted = predictions.get_array('energy'), predictions.get_array('energy_pred')
    natoms = predictions.get_array('natoms')
    rmse = 1000 * np.sqrt(np.mean(((energy - predicted) / natoms) ** 2))
    assert rmse == pytest.approx(metrics['rmse_energy_test'], rel=1e-3)
    assert predictions.get_array('forces').shape == predictions.get_array('forces_pred').shape == (natoms.sum(), 3)


def test_pyace_evaluator_fit_takes_its_test_errors_from_the_predictions(parse_fixture):
    """A real fit with ``backend.evaluator: pyace`` (16 + 4 Cu-Al structures): pacemaker wrote only the header of
    test_metrics.txt; the test errors are those of the test predictions, and the potential carries them."""
    folder = FIXTURES / 'pacemaker' / 'success_pyace_evaluator'
    assert len((folder / 'test_metrics.txt').read_text().splitlines()) == 1
    results, calcfunction = parse_fixture('success_pyace_evaluator')
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    metrics = results['metrics'].get_dict()
    assert metrics['test_metrics_source'] == 'test_predictions'
    with np.load(folder / 'test_predictions.npz') as arrays:
        energy = (arrays['energy_pred'] - arrays['energy']) / arrays['natoms']
        forces = arrays['forces_pred'] - arrays['forces']
    assert metrics['rmse_energy_test'] == pytest.approx(1000 * np.sqrt(np.mean(energy**2)))
    assert metrics['rmse_forces_test'] == pytest.approx(1000 * np.sqrt(np.mean(forces**2)))
    assert metrics['mae_forces_test'] == pytest.approx(1000 * np.mean(np.abs(forces)))
    assert 'loss_test' not in metrics and 'test_loss' not in results['learning_curve'].get_arraynames()
    assert results['potential'].base.attributes.get('rmse_forces_test') == metrics['rmse_forces_test']


@pytest.mark.parametrize(
    ('case', 'exit_code', 'fragment'),
    [
        ('failed_nan_energy', 410, 'AssertionError: energy_corrected contains NaNs'),
        ('failed_nan_forces', 410, 'AssertionError: forces column contains NaN'),
        ('failed_no_forces', 410, 'ValueError: Column `forces` not found in dataset'),
        ('failed_no_ecorr', 410, "ValueError: Neither 'energy_corrected' column"),
        ('failed_missing_data', 410, 'FileNotFoundError: [Errno 2] No such file or directory'),
        ('failed_no_input', 410, 'FileNotFoundError'),
        ('failed_broken_yaml', 410, 'ruamel.yaml.parser.ParserError: while parsing a flow sequence'),
        ('failed_empty', 410, "_UFuncNoLoopError: ufunc 'add' did not contain a loop"),
        ('failed_bad_eval', 410, "ValueError: Unknown evaluator type 'tensorpotx'"),
        ('failed_typo_pot', 410, "KeyError: 'ndensity'"),
        ('killed', 430, 'killed by signal 9'),
        ('segfault', 431, 'crashed with signal 11 (SIGSEGV)'),
        ('nan_loss', 420, 'iteration 28'),
        ('missing_potential', 303, 'without writing output_potential.yaml'),
        ('yace_failed', 304, 'RuntimeError: Could not convert B-basis'),
        ('conversion_failed', 401, "ModuleNotFoundError: No module named 'pandas'"),
        ('no_status', 307, 'stopped before pacemaker finished'),
        # a real Slurm --time stop whose scheduler stderr starts with a line of the code's prepend text
        ('slurm_time_limit_after_module_line', 400, 'ran out of walltime'),
        ('no_log', 301, 'wrote no log.txt'),
        ('missing_executable', 402, 'the pacemaker executable /opt/nowhere/bin/pacemaker does not exist'),
    ],
)
def test_failures_map_to_named_exit_codes(parse_fixture, case, exit_code, fragment):
    results, calcfunction = parse_fixture(case)
    assert calcfunction.exit_status == exit_code, calcfunction.exit_message
    assert fragment in calcfunction.exit_message
    assert 'potential' not in results and 'metrics' not in results


def test_exit_codes_below_400_invalidate_the_cache():
    from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation

    for exit_code in PacemakerCalculation.spec().exit_codes.values():
        if 300 <= exit_code.status < 400:
            assert exit_code.invalidates_cache, exit_code.label
    assert PacemakerCalculation.exit_codes.ERROR_PACEMAKER_FAILED.invalidates_cache is False


def test_last_error_line_skips_trailing_context():
    text = 'INFO stuff\nTraceback (most recent call last):\n  File "x"\nValueError: bad thing\n  in "file", line 2\n'
    assert last_error_line(text) == 'ValueError: bad thing'
    assert last_error_line('2026-01-01 I - all fine\n') is None


def test_metrics_table_rejects_ragged_rows():
    with pytest.raises(ValueError, match='different lengths'):
        parse_metrics_table('a b\n1 2\n3\n')


MUTATIONS = {
    'empty': lambda content, rng: b'',
    'truncated': lambda content, rng: content[: len(content) // 2],
    'garbled': lambda content, rng: bytes(rng.integers(0, 256, size=max(16, len(content) // 4), dtype=np.uint8)),
    'first line only': lambda content, rng: content.split(b'\n', 1)[0],
    # a table whose header names other columns (it used to raise a KeyError for metrics.txt)
    'renamed columns': lambda content, rng: b'\n'.join(
        [b' '.join(b'x%d' % i for i, _ in enumerate(content.split(b'\n', 1)[0].split())), *content.split(b'\n')[1:]]
    ),
    # every number of a table infinite (an integer column such as iter_num raised OverflowError)
    'infinite numbers': lambda content, rng: b'\n'.join(
        [
            line if index == 0 else b' '.join(b'inf' if word[:1].isdigit() else word for word in line.split())
            for index, line in enumerate(content.split(b'\n'))
        ]
    ),
}


@pytest.mark.parametrize('mutation', list(MUTATIONS))
def test_any_retrieved_content_gives_a_named_exit_code(parse_fixture, tmp_path, mutation):
    """Fuzz: every retrieved file of a successful run, emptied, truncated, garbled or cut to one line, in turn:
    the parser ends with one of the calculation's exit codes (or success with all outputs), never an exception."""
    import shutil

    from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation

    rng = np.random.default_rng(sorted(MUTATIONS).index(mutation))
    known = {0} | {code.status for code in PacemakerCalculation.exit_codes.values()}
    source = FIXTURES / 'pacemaker' / 'success_maxiter'
    for name in sorted(path.name for path in source.iterdir()):
        folder = tmp_path / f'{mutation}-{name}'.replace(' ', '_')
        shutil.copytree(source, folder)
        target = folder / name
        target.write_bytes(MUTATIONS[mutation](target.read_bytes(), rng))
        results, calcfunction = parse_fixture(folder)
        assert not calcfunction.is_excepted, (name, calcfunction.exception)
        status = calcfunction.exit_status
        assert status in known, (name, status, calcfunction.exit_message)
        if status == 0:
            assert {'potential', 'potential_yaml', 'metrics', 'learning_curve'} <= set(results), name


def test_the_settings_record_of_the_calculation_goes_into_the_metrics(parse_fixture):
    """What the calculation decided at submission (``aiida_settings_record.json``) is reported as it is; a record that
    is not JSON is left out with a warning, and the parse still succeeds."""
    import json

    record = {
        'settings_used': {'fit': {'loss': {'kappa': 0.3}}},
        'settings_filled': {'fit.loss.kappa': 0.3},
        'settings_dropped': [],
        'reference_energy_source': 'none',
        'reference_energy_reason': 'the training energies lie within the range',
    }
    results, calcfunction = parse_fixture('success_maxiter', files={'aiida_settings_record.json': json.dumps(record)})
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    metrics = results['metrics'].get_dict()
    assert {key: metrics[key] for key in record} == record

    results, calcfunction = parse_fixture('success_maxiter', files={'aiida_settings_record.json': '{not json'})
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    assert 'settings_used' not in results['metrics'].get_dict()
