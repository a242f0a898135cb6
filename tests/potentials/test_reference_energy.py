"""Reference energies: pacemaker's metadata to per-element E0, written into the .yace by the parser."""

import numpy as np
import pytest

from aiida_mlip_autopipe.potentials.reference_energy import (
    ReferenceEnergyError,
    auto_reference,
    e0_per_element,
    plan_reference_energy,
    potential_header,
    read_e0,
    with_e0,
)

YACE = 'elements: [Al, Cu]\nE0: [0, 0]\ndeltaSplineBins: 0.001\nembeddings:\n  0: {ndensity: 2}\n'


@pytest.mark.parametrize(
    ('metadata', 'expected', 'source'),
    [
        ({}, {'Al': 0.0, 'Cu': 0.0}, 'none'),
        ({'reference_energy': '{"Al": -56.0, "Cu": -3.0, "shift": 0.5}'}, {'Al': -56.5, 'Cu': -3.5}, 'per-element'),
        ({'reference_energy': '{"Al": -56.0}'}, {'Al': -56.0, 'Cu': 0.0}, 'per-element'),
        ({'reference_energy': '0'}, {'Al': 0.0, 'Cu': 0.0}, 'constant'),
        ({'reference_energy': '"VASP_PBE_500_0.125_0.1_NM"'}, None, 'preset VASP_PBE_500_0.125_0.1_NM'),
    ],
)
def test_e0_per_element(metadata, expected, source):
    e0, found = e0_per_element(metadata, ['Al', 'Cu'])
    assert found.startswith(source)
    if expected is not None:
        assert e0 == pytest.approx(expected)
    else:
        from pyace.process_df import SINGLE_ATOM_ENERGY_DICT

        assert e0 == pytest.approx({el: SINGLE_ATOM_ENERGY_DICT['VASP_PBE_500_0.125_0.1_NM'][el] for el in e0})


def test_with_e0_writes_the_yace_and_refuses_what_it_cannot():
    text = with_e0(YACE, {'Al': -56.5, 'Cu': -3.5})
    assert read_e0(text) == {'Al': -56.5, 'Cu': -3.5}
    assert text.replace('E0: [-56.5, -3.5]', 'E0: [0, 0]') == YACE
    with pytest.raises(ReferenceEnergyError, match='no E0 given for Cu'):
        with_e0(YACE, {'Al': 1.0})
    with pytest.raises(ReferenceEnergyError, match='2 elements but 1 E0'):
        read_e0(YACE.replace('E0: [0, 0]', 'E0: [0]'))
    with pytest.raises(ReferenceEnergyError, match='E0'):
        with_e0(YACE.replace('E0: [0, 0]\n', ''), {'Al': 1.0, 'Cu': 1.0})
    with pytest.raises(ReferenceEnergyError, match='cannot read'):
        e0_per_element({'reference_energy': '[1, 2]'}, ['Al'])


def test_parser_writes_pacemakers_reference_into_the_yace(parse_fixture):
    results, calcfunction = parse_fixture('success_reference_energy')
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    potential = results['potential']
    assert read_e0(potential.get_content()) == {'Cu': -3.75}
    assert potential.base.attributes.get('reference_energy') == {'Cu': -3.75}
    assert results['potential_yaml'].base.attributes.get('reference_energy') == {'Cu': -3.75}
    metrics = results['metrics'].get_dict()
    assert metrics['reference_energy'] == {'Cu': -3.75}
    assert metrics['reference_energy_source'] == 'per-element reference energies'


def random_arrays(rng, count: int, periodic: bool = True) -> dict:
    """Stable-format arrays of ``count`` random Al/Cu/Ni structures with random energies (no geometry checks)."""
    natoms = rng.integers(1, 6, size=count)
    total = int(natoms.sum())
    cells = np.array([np.eye(3) * rng.uniform(2.0, 6.0) for _ in range(count)])
    return {
        'natoms': natoms,
        'numbers': rng.choice([13, 28, 29], size=total),
        'positions': rng.uniform(0, 2, size=(total, 3)),
        'cells': cells if periodic else np.zeros((count, 3, 3)),
        'pbc': np.full((count, 3), periodic),
        'energy': rng.uniform(-80.0, -1.0, size=count) * natoms,
    }


@pytest.mark.parametrize('periodic', [True, False])
def test_auto_reference_is_pacemakers(periodic):
    """The plugin's port of pacemaker's ``auto`` gives pacemaker's own per-element energies and shift."""
    import pandas as pd
    from pyace.process_df import compute_shifted_scaled_corrected_energy

    from aiida_mlip_autopipe.jobscripts.pacemaker_io import build_atoms

    arrays = random_arrays(np.random.default_rng(7), 15, periodic)
    frame = pd.DataFrame({'ase_atoms': build_atoms(arrays), 'energy': arrays['energy']})
    frame['NUMBER_OF_ATOMS'] = arrays['natoms']
    expected = compute_shifted_scaled_corrected_energy(frame)
    computed = auto_reference(arrays)
    assert set(computed) == set(expected) == {'Al', 'Ni', 'Cu', 'shift'}
    assert computed == pytest.approx({key: float(value) for key, value in expected.items()}, rel=1e-12, abs=1e-12)
    assert (computed['shift'] == 0.0) is not periodic


def test_the_reference_plan_uses_the_training_data_only():
    rng = np.random.default_rng(3)
    absolute = random_arrays(rng, 8)  # -80 .. -1 eV/atom: below -20 somewhere
    near_zero = {**absolute, 'energy': rng.uniform(-5.0, -1.0, size=8) * absolute['natoms']}

    plan = plan_reference_energy(None, None, absolute, has_test_file=True)
    assert plan.source == 'auto (training_set)' and plan.value == auto_reference(absolute)
    assert 'training set only' in plan.reason
    plan = plan_reference_energy(None, None, lambda: near_zero, has_test_file=True)
    assert plan.source == 'none' and plan.value == {'Al': 0.0, 'Cu': 0.0, 'Ni': 0.0}
    assert plan_reference_energy(None, None, absolute, has_test_file=False).value is None  # pacemaker's own auto
    assert plan_reference_energy(None, None, near_zero, has_test_file=False).source == 'none'
    given = plan_reference_energy({'Cu': -3.0}, {'reference_energy': '{"Cu": -1}'}, absolute, True)
    assert (given.value, given.source) == (None, 'settings')
    inherited = plan_reference_energy(None, {'reference_energy': '{"Cu": -1}'}, lambda: 1 / 0, True)
    assert (inherited.value, inherited.source) == (None, 'initial_potential')
    assert set(inherited.record()) == {'reference_energy_source', 'reference_energy_reason'}


def test_potential_header_reads_elements_and_metadata():
    text = 'metadata:\n  reference_energy: \'{"Cu": -3.5}\'\nspecies:\n  - speciesblock: Cu\n  - speciesblock: Cu Al\n'
    assert potential_header(text) == (['Cu'], {'reference_energy': '{"Cu": -3.5}'})
    for bad in ('a: 1\n', 'species: []\n', '[1, 2', 'just text'):
        with pytest.raises(ReferenceEnergyError):
            potential_header(bad)


def around_minus_20(count: int, seed: int) -> list:
    """EMT Al/Cu cells with labels on an absolute scale about -20 eV/atom (some above, some below)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from aiida_mlip_autopipe.demo.emt import emt_structures

    shift = {'Cu': -19.8, 'Al': -20.3}
    structures = emt_structures(count, repeat=1, seed=seed)
    for atoms in structures:
        energy = atoms.get_potential_energy() + sum(shift[symbol] for symbol in atoms.get_chemical_symbols())
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=atoms.get_forces())
    return structures


def per_atom(structures) -> np.ndarray:
    return np.array([atoms.get_potential_energy() / len(atoms) for atoms in structures])


@pytest.mark.pacemaker
@pytest.mark.parametrize('split', ['train above -20, test below', 'random', 'test_size'])
def test_a_potential_reproduces_its_training_labels_whatever_the_split(split, pacemaker_code):
    """Labels around -20 eV/atom, split three ways: the stored .yace gives the training structures the energies
    pacemaker predicted for them on the labels' scale (the reference comes from the training data only)."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation
    from aiida_mlip_autopipe.data.training_set import TrainingSetData
    from aiida_mlip_autopipe.potentials.calculator import get_calculator
    from tests.helpers import FIT_OPTIONS

    structures = around_minus_20(12, seed=41)
    energies = per_atom(structures)
    settings = {'potential': {'functions': {'number_of_functions_per_element': 5}}, 'fit': {'maxiter': 8}}
    inputs = {}
    if split == 'test_size':
        training = structures
        settings['data'] = {'test_size': 0.25}
    else:
        order = np.argsort(-energies) if split != 'random' else np.random.default_rng(5).permutation(len(energies))
        training, test = [structures[i] for i in order[:7]], [structures[i] for i in order[7:]]
        inputs['test_set'] = TrainingSetData.from_atoms(test).store()
        if split != 'random':
            assert per_atom(training).min() > -20 > per_atom(test).max()  # the case pacemaker got wrong
    _, node = run_get_node(
        PacemakerCalculation,
        code=pacemaker_code,
        training_set=TrainingSetData.from_atoms(training).store(),
        settings=orm.Dict(settings),
        metadata={'options': FIT_OPTIONS},
        **inputs,
    )
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    metrics = node.outputs.metrics.get_dict()
    expected_source = {
        'train above -20, test below': 'none',
        'random': 'auto (training_set)',
        'test_size': 'auto (pacemaker, training_set)',
    }[split]
    labels = per_atom(training)
    predicted = node.outputs.train_predictions
    pacemaker_per_atom = predicted.get_array('energy_pred') / predicted.get_array('natoms')
    calculator = get_calculator(node.outputs.potential)
    by_name = {}
    for atoms in training:
        copy = atoms.copy()
        copy.calc = calculator
        by_name[round(float(atoms.get_potential_energy() / len(atoms)), 9)] = copy.get_potential_energy() / len(atoms)
    # pacemaker's train predictions hold the training structures (in its order): compare each with the .yace's
    reference_per_atom = predicted.get_array('energy') / predicted.get_array('natoms')
    potential_per_atom = np.array([by_name[round(float(value), 9)] for value in reference_per_atom])
    np.testing.assert_allclose(potential_per_atom, pacemaker_per_atom, atol=2e-3)  # eV/atom, .yace splines
    rmse = 1000 * np.sqrt(np.mean(np.square(potential_per_atom - reference_per_atom)))
    assert len(reference_per_atom) == (9 if split == 'test_size' else 7)
    assert set(np.round(reference_per_atom, 9)) <= set(np.round(labels, 9))
    print(
        f'{split}: {metrics["reference_energy_source"]}; .yace RMSE on train {rmse:.2f} meV/atom, '
        f'pacemaker {metrics["rmse_energy_train"]:.2f}'
    )
    assert rmse == pytest.approx(metrics['rmse_energy_train'], abs=2.0)
    assert metrics['reference_energy_source'] == expected_source, metrics['reference_energy_reason']
