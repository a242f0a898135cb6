"""A real tiny pacemaker fit through ``run()``: the potential works, the metrics are pacemaker's own."""

import re
import subprocess

import numpy as np
import pytest
from aiida import orm

from aiida_mlip_autopipe.data.training_set import TrainingSetData
from aiida_mlip_autopipe.demo.emt import emt_structures
from aiida_mlip_autopipe.potentials.accuracy import prediction_errors
from tests.helpers import TINY_SETTINGS, calculator_errors, fit_cu_al

pytestmark = pytest.mark.pacemaker


def test_fit_finishes_with_all_outputs(tiny_fit):
    assert tiny_fit.is_finished_ok, (tiny_fit.exit_status, tiny_fit.exit_message)
    outputs = tiny_fit.outputs
    for label in ('potential', 'potential_yaml', 'metrics', 'learning_curve', 'train_predictions', 'test_predictions'):
        assert label in outputs
    assert outputs.potential.filename.endswith('.yace')
    retrieved = set(outputs.retrieved.base.repository.list_object_names())
    assert {'interim_potential_0.yaml', 'fitting_data_info.pckl.gzip', 'log.txt'} <= retrieved


def test_potential_loads_in_pyace_and_gives_finite_results(tiny_fit, tmp_path):
    from pyace import PyACECalculator

    path = tmp_path / 'potential.yace'
    path.write_bytes(tiny_fit.outputs.potential.get_content(mode='rb'))
    atoms = emt_structures(1, repeat=2, seed=99)[0]
    atoms.calc = PyACECalculator(str(path))
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    assert np.isfinite(energy) and forces.shape == (32, 3) and np.all(np.isfinite(forces))


@pytest.fixture(scope='module')
def tensorpot_fit(pacemaker_code, cu_al_sets):
    """The tiny fit with the plugin's default evaluator (``tensorpot``, which logs train and test tables)."""
    settings = {**TINY_SETTINGS, 'backend': {'display_step': 2}}
    return fit_cu_al(pacemaker_code, cu_al_sets, settings)


def test_metrics_match_pacemakers_own_log(tensorpot_fit):
    metrics = tensorpot_fit.outputs.metrics.get_dict()
    assert metrics['settings_filled']['backend.evaluator'] == 'tensorpot'
    log = tensorpot_fit.outputs.retrieved.base.repository.get_object_content('log.txt')
    rows = [(float(e), float(f)) for e, f in re.findall(r'RMSE:\s+([0-9.]+)\s+[0-9.]+\s+([0-9.]+)', log)]
    *_, (train_e, train_f), (test_e, test_f) = rows
    assert round(metrics['rmse_energy_train'], 2) == pytest.approx(train_e, abs=0.006)
    assert round(metrics['rmse_forces_train'], 2) == pytest.approx(train_f, abs=0.006)
    assert round(metrics['rmse_energy_test'], 2) == pytest.approx(test_e, abs=0.006)
    assert round(metrics['rmse_forces_test'], 2) == pytest.approx(test_f, abs=0.006)
    assert 'test_metrics_source' not in metrics  # pacemaker's own test_metrics.txt
    assert metrics['iterations'] == 5
    assert metrics['num_structures_train'] == 16 and metrics['num_structures_test'] == 4
    assert metrics['elements'] == ['Al', 'Cu']
    assert tensorpot_fit.outputs.learning_curve.get_array('iteration')[-1] == 5
    # the errors the plugin computes from predictions when pacemaker wrote no test table agree with pacemaker's own
    for key, value in prediction_errors(tensorpot_fit.outputs.test_predictions).items():
        assert value == pytest.approx(metrics[f'{key}_test'], rel=1e-6)


def test_pyace_evaluator_fit_gets_its_test_errors_from_the_predictions(tiny_fit, cu_al_sets):
    """pacemaker's ``pyace`` evaluator writes only the header of test_metrics.txt: the test errors come from the test
    predictions, and they are the errors of the stored .yace on the test structures."""
    from aiida_mlip_autopipe.potentials.calculator import get_calculator

    metrics = tiny_fit.outputs.metrics.get_dict()
    assert tiny_fit.inputs.settings['backend']['evaluator'] == 'pyace'
    assert len(tiny_fit.outputs.retrieved.base.repository.get_object_content('test_metrics.txt').splitlines()) == 1
    assert metrics['test_metrics_source'] == 'test_predictions'
    assert tiny_fit.outputs.potential.base.attributes.get('rmse_forces_test') == metrics['rmse_forces_test']
    errors = calculator_errors(get_calculator(tiny_fit.outputs.potential), cu_al_sets[1].get_atoms())
    assert 1000 * np.sqrt(np.mean(np.square(errors['energy']))) == pytest.approx(metrics['rmse_energy_test'], rel=1e-4)
    forces = errors['forces']
    assert 1000 * np.sqrt(np.mean(np.square(forces))) == pytest.approx(metrics['rmse_forces_test'], rel=1e-4)
    assert 1000 * np.mean(np.abs(forces)) == pytest.approx(metrics['mae_forces_test'], rel=1e-4)


def test_dataset_pickle_is_written_by_pacemakers_own_pandas(tiny_fit, pacemaker_executable):
    python = pacemaker_executable.read_text().splitlines()[0].removeprefix('#!').strip()
    version = subprocess.run(
        [python, '-c', 'import pandas; print(pandas.__version__)'], capture_output=True, text=True, check=True
    ).stdout.strip()
    log = tiny_fit.outputs.retrieved.base.repository.get_object_content('aiida_prepare.log')
    assert f'to-dataframe: 16 structures training_set.npz -> training_data.pckl.gzip (pandas {version})' in log


def test_potential_is_queryable_without_opening_it(tiny_fit):
    query = orm.QueryBuilder().append(
        orm.SinglefileData,
        filters={
            'attributes.elements': {'contains': ['Al', 'Cu']},
            'attributes.rmse_forces_train': {'<': 1e6},
            'id': tiny_fit.outputs.potential.pk,
        },
        project=['attributes.cutoff', 'attributes.num_functions', 'attributes.pacemaker_version'],
    )
    # rcut 7.0: pacemaker's template bond block, filled by the plugin because TINY_SETTINGS gives none
    assert query.all() == [[7.0, tiny_fit.outputs.metrics['num_functions'], '0.4.0rc1']]


def test_continue_from_potential_yaml(tiny_fit, pacemaker_code, cu_al_sets):
    """``initial_potential`` continues the fit (``pacemaker -p``): it starts where the previous one stopped."""
    settings = {**TINY_SETTINGS, 'fit': {'maxiter': 2}}
    node = fit_cu_al(pacemaker_code, cu_al_sets, settings, initial_potential=tiny_fit.outputs.potential_yaml)
    assert node.is_finished_ok, node.exit_message
    curve = node.outputs.learning_curve
    assert curve.get_array('loss')[0] == pytest.approx(tiny_fit.outputs.metrics['loss'], rel=1e-3)
    assert node.outputs.metrics['loss'] <= tiny_fit.outputs.metrics['loss']
    log = node.outputs.retrieved.base.repository.get_object_content('log.txt')
    assert 'initial_potential.yaml' in log
    assert isinstance(node.inputs.training_set, TrainingSetData)
