"""Fidelity: an input raw pacemaker accepts gives, through the plugin, raw pacemaker's own fit on the same data.

Inputs are shaped like python-ace's four official examples (``examples/Cu-I``, ``Cu-II``, ``HEA``, ``Ethanol``:
the same sections and keys, including ``w1_coeffs`` / ``w2_coeffs``, ``kappa: auto``, ladder fitting, fit cycles,
weighting and core repulsion), with small bases, little EMT data and few iterations. Each runs twice: raw
``pacemaker input.yaml`` in a folder, and ``PacemakerCalculation`` with the same dictionary as ``settings``.
"""

from __future__ import annotations

import copy
import os
import pathlib
import subprocess

import numpy as np
import pytest
import yaml
from aiida import orm
from aiida.engine import run_get_node

from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation
from aiida_mlip_autopipe.data.training_set import TrainingSetData
from aiida_mlip_autopipe.demo.emt import emt_structures
from aiida_mlip_autopipe.potentials.reference_energy import read_e0
from tests.helpers import FIT_OPTIONS, basis_coefficients, single_point

pytestmark = pytest.mark.pacemaker

#: The embedding block all four examples share.
EMBEDDINGS = {'ALL': {'npot': 'FinnisSinclairShiftedScaled', 'fs_parameters': [1, 1, 1, 0.5], 'ndensity': 2}}

CU_I = {
    'seed': 42,
    'metadata': {'comment': 'Example of fitting simple copper potential'},
    'potential': {
        'deltaSplineBins': 0.001,
        'elements': ['Cu'],
        'embeddings': EMBEDDINGS,
        'bonds': {
            'ALL': {
                'radbase': 'ChebExpCos',
                'radparameters': [5.25],
                'rcut': 5,
                'dcut': 0.01,
                'NameOfCutoffFunction': 'cos',
            }
        },
        'functions': {'UNARY': {'nradmax_by_orders': [6, 2, 2, 1], 'lmax_by_orders': [0, 2, 1, 1]}},
    },
    'fit': {
        'loss': {'kappa': 0.35, 'L1_coeffs': 1e-8, 'L2_coeffs': 1e-8, 'w0_rad': 1e-8, 'w1_rad': 1e-8, 'w2_rad': 1e-8},
        'optimizer': 'BFGS',
        'maxiter': 4,
        'ladder_step': 10,
        'ladder_type': 'body_order',
    },
    'backend': {'evaluator': 'tensorpot', 'batch_size': 100, 'display_step': 50},
}

CU_II = {
    'seed': 42,
    'metadata': {'comment': 'Example of fitting simple copper potential for Cu-II dataset'},
    'potential': {
        'deltaSplineBins': 0.001,
        'elements': ['Cu'],
        'embeddings': EMBEDDINGS,
        'bonds': {
            'ALL': {
                'radbase': 'SBessel',
                'radparameters': [5.25],
                'rcut': 5.5,
                'dcut': 0.01,
                'NameOfCutoffFunction': 'cos',
            }
        },
        'functions': {'UNARY': {'nradmax_by_orders': [8, 3, 2, 1], 'lmax_by_orders': [0, 3, 2, 1]}},
    },
    'data': {'test_size': 0.1},
    'fit': {
        'loss': {'kappa': 'auto', 'L1_coeffs': 1e-8, 'L2_coeffs': 1e-8, 'w0_rad': 1e-8, 'w1_rad': 1e-8, 'w2_rad': 1e-8},
        'optimizer': 'BFGS',
        'maxiter': 5,
        'repulsion': 'auto',
        'ladder_step': 200,
        'ladder_type': 'power_order',
    },
    'backend': {'evaluator': 'tensorpot', 'batch_size': 100, 'display_step': 50},
}

HEA = {
    'seed': 42,
    'metadata': {'comment': 'Exempliar fit of HEA dataset'},
    'potential': {
        'deltaSplineBins': 0.001,
        'elements': ['Cu', 'Ni', 'Pd', 'Ag', 'Au'],
        'embeddings': EMBEDDINGS,
        'bonds': {
            'ALL': {
                'radbase': 'ChebExpCos',
                'radparameters': [5.25],
                'rcut': 4.5,
                'dcut': 0.01,
                'NameOfCutoffFunction': 'cos',
            }
        },
        'functions': {
            'ALL': {'nradmax_by_orders': [4, 1], 'lmax_by_orders': [0, 1]},
            'QUATERNARY': {'nradmax_by_orders': [4, 1, 1, 1], 'lmax_by_orders': [0, 1, 1, 1]},
            'QUINARY': {'nradmax_by_orders': [4, 1, 1, 1], 'lmax_by_orders': [0, 1, 1, 1]},
        },
    },
    'fit': {
        'loss': {
            'kappa': 0.95,
            'L1_coeffs': 0,
            'L2_coeffs': 0,
            'w1_coeffs': 0,
            'w2_coeffs': 0,
            'w0_rad': 0,
            'w1_rad': 0,
            'w2_rad': 0,
        },
        'weighting': {
            'type': 'EnergyBasedWeightingPolicy',
            'nfit': 20,
            'DElow': 1.0,
            'DEup': 10.0,
            'DE': 1000000.0,
            'DF': 1000000.0,
            'energy': 'convex_hull',
            'seed': 42,
        },
        'optimizer': 'BFGS',
        'maxiter': 3,
        'fit_cycles': 1,
        'ladder_step': 200,
        'ladder_type': 'body_order',
    },
    'backend': {'evaluator': 'tensorpot', 'batch_size': 20, 'display_step': 50},
}

ETHANOL = {
    'seed': 42,
    'metadata': {'comment': 'Exempliar fit of ethanol molecule MD snapshots'},
    'potential': {
        'deltaSplineBins': 0.001,
        'elements': ['C', 'O', 'H'],
        'embeddings': EMBEDDINGS,
        'bonds': {
            'ALL': {
                'radbase': 'ChebExpCos',
                'radparameters': [5.25],
                'rcut': 4,
                'dcut': 0.01,
                'NameOfCutoffFunction': 'cos',
                'core-repulsion': [0.0, 5.0],
            }
        },
        'functions': {'ALL': {'nradmax_by_orders': [5, 2, 1], 'lmax_by_orders': [0, 1, 1]}},
    },
    'fit': {
        'loss': {
            'kappa': 0.99,
            'L1_coeffs': 0,
            'L2_coeffs': 0,
            'w1_coeffs': 0,
            'w2_coeffs': 0,
            'w0_rad': 0,
            'w1_rad': 0,
            'w2_rad': 0,
        },
        'optimizer': 'BFGS',
        'maxiter': 3,
        'fit_cycles': 2,
        'ladder_step': 100,
        'ladder_type': 'body_order',
    },
    'backend': {'evaluator': 'tensorpot', 'batch_size': 1000, 'display_step': 50},
}


def ethanol_snapshots(count: int, seed: int) -> list:
    """Rattled ethanol molecules (not periodic) labelled with ASE's EMT (C, O, H parameters)."""
    from ase.build import molecule
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    structures = []
    for _ in range(count):
        atoms = molecule('CH3CH2OH')
        atoms.center(vacuum=5.0)
        atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        single_point(atoms, energy, forces)
        structures.append(atoms)
    return structures


EXAMPLES = {
    'Cu-I': (CU_I, lambda: emt_structures(12, elements=('Cu',), seed=21)),
    'Cu-II': (CU_II, lambda: emt_structures(20, elements=('Cu',), seed=22)),
    'HEA': (HEA, lambda: emt_structures(12, elements=('Cu', 'Ni', 'Pd', 'Ag', 'Au'), seed=23)),
    'Ethanol': (ETHANOL, lambda: ethanol_snapshots(12, seed=24)),
}


def start_raw_pacemaker(pacemaker_executable, document: dict, folder) -> subprocess.Popen:
    """Start ``pacemaker input.yaml`` by hand in ``folder`` (its data file already there), with the plugin's threads.

    It runs while the plugin's own fit runs: most of a small fit is TensorFlow building its graph, in one Python
    thread, so the two fits take little more than one on two cores, and the threads, hence the digits, are the same.
    """
    (folder / 'input.yaml').write_text(yaml.safe_dump(document))
    return subprocess.Popen(
        [str(pacemaker_executable), 'input.yaml'],
        cwd=folder,
        env={**os.environ, **thread_environment()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_raw_pacemaker(process: subprocess.Popen, folder) -> dict:
    """Wait for a raw run; return its potential and metrics."""
    _, stderr = process.communicate()
    assert process.returncode == 0, stderr[-2000:]
    return {'yaml': (folder / 'output_potential.yaml').read_text(), 'metrics': (folder / 'metrics.txt').read_text()}


def start_raw_on_training_set(pacemaker_executable, training_set: TrainingSetData, document: dict, folder):
    """Write the training set as pacemaker's DataFrame in ``folder`` and start raw pacemaker on it."""
    from aiida_mlip_autopipe.jobscripts import pacemaker_io

    folder.mkdir()
    with training_set.base.repository.as_path(TrainingSetData.FILENAME) as npz:
        python = pacemaker_executable.read_text().splitlines()[0].removeprefix('#!').strip()
        subprocess.run(
            [python, pacemaker_io.__file__, 'to-dataframe', str(npz), 'data.pckl.gzip'], cwd=folder, check=True
        )
    document = copy.deepcopy(document)
    document.setdefault('data', {})['filename'] = 'data.pckl.gzip'
    return start_raw_pacemaker(pacemaker_executable, document, folder)


@pytest.mark.parametrize('name', list(EXAMPLES))
def test_official_example_inputs_give_raw_pacemakers_fit(name, pacemaker_code, pacemaker_executable, tmp_path):
    from aiida_mlip_autopipe.parsers.pacemaker import parse_metrics_table

    settings, make_data = EXAMPLES[name]
    training_set = TrainingSetData.from_atoms(make_data()).store()
    raw_process = start_raw_on_training_set(pacemaker_executable, training_set, settings, tmp_path / 'raw')

    _, node = run_get_node(
        PacemakerCalculation,
        code=pacemaker_code,
        training_set=training_set,
        settings=orm.Dict(settings),
        metadata={'options': FIT_OPTIONS},
    )
    raw = finish_raw_pacemaker(raw_process, tmp_path / 'raw')
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    rendered = yaml.safe_load(node.base.repository.get_object_content('input.yaml'))
    expected = copy.deepcopy(settings)
    for key in ('w1_coeffs', 'w2_coeffs'):  # ignored by pacemaker: dropped, and said so
        expected['fit']['loss'].pop(key, None)
    rendered['data'].pop('filename')
    assert rendered == {**expected, 'data': expected.get('data', {})}, 'the plugin changed the input'
    if 'w1_coeffs' in settings['fit']['loss']:
        assert any('w1_coeffs dropped' in message for message in node.outputs.metrics['settings_dropped'])
    assert node.outputs.metrics['settings_filled'] == {}

    plugin_count, plugin_coefficients = basis_coefficients(node.outputs.potential_yaml.get_content())
    raw_count, raw_coefficients = basis_coefficients(raw['yaml'])
    assert plugin_count == raw_count
    np.testing.assert_allclose(plugin_coefficients, raw_coefficients, rtol=1e-9, atol=1e-12)
    raw_loss = parse_metrics_table(raw['metrics'])['loss']
    plugin_loss = node.outputs.learning_curve.get_array('loss')
    np.testing.assert_allclose(plugin_loss, raw_loss, rtol=1e-9)
    difference = np.max(np.abs(plugin_coefficients - raw_coefficients))
    print(
        f'{name}: {plugin_count} functions, {len(plugin_coefficients)} coefficients, final loss {plugin_loss[-1]:.6e} '
        f'(raw {raw_loss[-1]:.6e}), largest coefficient difference {difference:.3g}'
    )


@pytest.mark.parametrize('test_size', [None, 0.25])
def test_absolute_energies_are_reproduced_on_the_labels_scale(test_size, pacemaker_code):
    """Labels shifted by tens of eV per atom and element (as DFT total energies are): pacemaker computes its
    reference energies, and the stored .yace gives the labels back on held-out structures."""
    from aiida_mlip_autopipe.potentials.calculator import get_calculator

    shift = {'Cu': -31.7, 'Al': -56.2}

    def shifted(structures):

        for atoms in structures:
            energy = atoms.get_potential_energy() + sum(shift[s] for s in atoms.get_chemical_symbols())
            single_point(atoms, energy, atoms.get_forces())
        return structures

    training = TrainingSetData.from_atoms(shifted(emt_structures(24, repeat=1, seed=31))).store()
    held_out = shifted(emt_structures(6, repeat=1, seed=32))
    settings = {
        'potential': {
            'bonds': {'ALL': {'radbase': 'SBessel', 'radparameters': [5.25], 'rcut': 5.0, 'dcut': 0.01}},
            'functions': {
                'number_of_functions_per_element': 10,
                'ALL': {'nradmax_by_orders': [6, 2], 'lmax_by_orders': [0, 1]},
            },
        },
        'fit': {'maxiter': 40, 'loss': {'kappa': 0.3}},
    }
    if test_size:
        settings['data'] = {'test_size': test_size}
    _, node = run_get_node(
        PacemakerCalculation,
        code=pacemaker_code,
        training_set=training,
        settings=orm.Dict(settings),
        metadata={'options': FIT_OPTIONS},
    )
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    reference = node.outputs.potential.base.attributes.get('reference_energy')
    assert set(reference) == {'Al', 'Cu'} and reference['Al'] < -40 and reference['Cu'] < -20
    # the .yace itself carries it (what LAMMPS's pair_style pace and pyace read), and the YAML node records it
    assert read_e0(node.outputs.potential.get_content()) == pytest.approx(reference)
    assert node.outputs.potential_yaml.base.attributes.get('reference_energy') == reference
    metrics = node.outputs.metrics.get_dict()
    calculator = get_calculator(node.outputs.potential)
    errors = []
    for atoms in held_out:
        label = atoms.get_potential_energy()
        atoms.calc = calculator
        errors.append((atoms.get_potential_energy() - label) / len(atoms))
    rmse = 1000 * np.sqrt(np.mean(np.square(errors)))
    print(f'shifted labels: held-out {rmse:.2f} meV/atom vs train {metrics["rmse_energy_train"]:.2f} meV/atom')
    assert rmse < 5 * metrics['rmse_energy_train'] + 10  # meV/atom, not tens of eV
    train = node.outputs.train_predictions
    np.testing.assert_allclose(
        train.get_array('energy_pred') / train.get_array('natoms'),
        train.get_array('energy') / train.get_array('natoms'),
        atol=5 * metrics['rmse_energy_train'] / 1000 + 0.01,
    )


#: python-ace's own Cu-I DataFrame (examples/Cu-I; 105 structures, labels in ``energy_corrected``).
CU_I_DATAFRAME = pathlib.Path(__file__).parent / 'fidelity_data' / 'Cu-I' / 'Cu_df1_A1_A2_A3_EV_elast_phon.pckl.gzip'

#: The example's input, shaped as in the issue: 30 functions, kappa 0.35, BFGS, test_size 0.1, seed 42 (fewer
#: iterations than the example's: the digits have to match all the same).
CU_I_OWN = {
    'seed': 42,
    'metadata': {'comment': 'Example of fitting simple copper potential'},
    'potential': {
        'deltaSplineBins': 0.001,
        'elements': ['Cu'],
        'embeddings': EMBEDDINGS,
        'bonds': {
            'ALL': {
                'radbase': 'ChebExpCos',
                'radparameters': [5.25],
                'rcut': 7,
                'dcut': 0.01,
                'NameOfCutoffFunction': 'cos',
            }
        },
        'functions': {
            'number_of_functions_per_element': 30,
            'UNARY': {'nradmax_by_orders': [15, 3, 2, 2, 1], 'lmax_by_orders': [0, 2, 2, 1, 1]},
        },
    },
    'data': {'test_size': 0.1},
    'fit': {
        'loss': {'kappa': 0.35, 'L1_coeffs': 1e-8, 'L2_coeffs': 1e-8, 'w0_rad': 1e-8, 'w1_rad': 1e-8, 'w2_rad': 1e-8},
        'optimizer': 'BFGS',
        'maxiter': 15,
    },
    'backend': {'evaluator': 'tensorpot', 'batch_size': 100, 'display_step': 50},
}


def thread_environment() -> dict:
    """The environment of a raw run with the plugin's thread count (the job's processes per machine)."""
    threads = str(FIT_OPTIONS['resources']['num_mpiprocs_per_machine'])
    return {name: threads for name in ('OMP_NUM_THREADS', 'TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS')}


def test_pacemakers_own_dataframe_gives_raw_pacemakers_fit(pacemaker_code, pacemaker_executable, tmp_path):
    """python-ace's Cu-I DataFrame, fitted by raw ``pacemaker input.yaml`` and, structure by structure through
    ``TrainingSetData.from_atoms`` (labels from ``energy_corrected``, order kept), by ``PacemakerCalculation``: the
    same split, the same DataFrame columns, the same losses and coefficients to the digit, given the same threads.

    The threads are what differs otherwise: TensorFlow sums in an order that depends on them, and BFGS carries a
    last-digit difference into a different fit (measured: 100 iterations end at a loss 2 % apart with 1 and 2
    threads). The plugin records them (``metrics['threads']``).
    """
    import pandas as pd

    from aiida_mlip_autopipe.jobscripts import pacemaker_io
    from aiida_mlip_autopipe.parsers.pacemaker import parse_metrics_table

    frame = pd.read_pickle(CU_I_DATAFRAME, compression='gzip')
    assert len(frame) == 105
    structures = []
    for given, energy, forces in zip(frame['ase_atoms'], frame['energy_corrected'], frame['forces'], strict=True):
        atoms = given.copy()
        single_point(atoms, energy, forces)
        structures.append(atoms)
    training_set = TrainingSetData.from_atoms(structures, sources=list(frame['name'])).store()

    # the DataFrame the job writes holds pacemaker's own columns, values and order, bit for bit
    with training_set.base.repository.as_path(TrainingSetData.FILENAME) as npz:
        written = tmp_path / 'written.pckl.gzip'
        python = pacemaker_executable.read_text().splitlines()[0].removeprefix('#!').strip()
        subprocess.run([python, pacemaker_io.__file__, 'to-dataframe', str(npz), str(written)], check=True)
    ours = pd.read_pickle(written, compression='gzip')
    assert list(ours['name']) == list(frame['name'])
    np.testing.assert_array_equal(ours['energy_corrected'].to_numpy(), frame['energy_corrected'].to_numpy())
    for mine, theirs, my_forces, their_forces in zip(
        ours['ase_atoms'], frame['ase_atoms'], ours['forces'], frame['forces'], strict=True
    ):
        np.testing.assert_array_equal(mine.numbers, theirs.numbers)
        np.testing.assert_array_equal(mine.positions, theirs.positions)
        np.testing.assert_array_equal(mine.cell.array, theirs.cell.array)
        np.testing.assert_array_equal(mine.pbc, theirs.pbc)
        np.testing.assert_array_equal(my_forces, their_forces)

    raw_folder = tmp_path / 'raw'
    raw_folder.mkdir()
    (raw_folder / CU_I_DATAFRAME.name).write_bytes(CU_I_DATAFRAME.read_bytes())
    document = copy.deepcopy(CU_I_OWN)
    document['data']['filename'] = CU_I_DATAFRAME.name
    raw_process = start_raw_pacemaker(pacemaker_executable, document, raw_folder)

    _, node = run_get_node(
        PacemakerCalculation,
        code=pacemaker_code,
        training_set=training_set,
        settings=orm.Dict(CU_I_OWN),
        metadata={'options': FIT_OPTIONS},
    )
    finish_raw_pacemaker(raw_process, raw_folder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    rendered = yaml.safe_load(node.base.repository.get_object_content('input.yaml'))
    assert rendered == {**CU_I_OWN, 'data': {**CU_I_OWN['data'], 'filename': 'training_data.pckl.gzip'}}
    metrics = node.outputs.metrics.get_dict()
    assert (metrics['num_structures_train'], metrics['num_structures_test']) == (95, 10)
    assert metrics['threads'] == {name: int(value) for name, value in thread_environment().items()}

    raw_train = parse_metrics_table((raw_folder / 'metrics.txt').read_text())
    raw_test = parse_metrics_table((raw_folder / 'test_metrics.txt').read_text())
    curve = node.outputs.learning_curve
    np.testing.assert_allclose(curve.get_array('loss'), raw_train['loss'], rtol=1e-12)
    np.testing.assert_allclose(curve.get_array('test_loss'), raw_test['loss'], rtol=1e-12)
    np.testing.assert_allclose(metrics['rmse_energy_train'], raw_train['rmse_epa'][-1] * 1000, rtol=1e-12)
    np.testing.assert_allclose(metrics['rmse_energy_test'], raw_test['rmse_epa'][-1] * 1000, rtol=1e-12)
    plugin_count, plugin_coefficients = basis_coefficients(node.outputs.potential_yaml.get_content())
    raw_count, raw_coefficients = basis_coefficients((raw_folder / 'output_potential.yaml').read_text())
    assert plugin_count == raw_count == 30
    np.testing.assert_array_equal(plugin_coefficients, raw_coefficients)
    print(
        f'Cu-I DataFrame: loss {curve.get_array("loss")[-1]:.7e} (raw {raw_train["loss"][-1]:.7e}), train '
        f'{metrics["rmse_energy_train"]:.2f} meV/atom, {metrics["rmse_forces_train"]:.2f} meV/Å, test '
        f'{metrics["rmse_energy_test"]:.2f} meV/atom, threads {metrics["threads"]}'
    )
