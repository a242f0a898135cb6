"""A small real loop with Quantum ESPRESSO labels: Al, 2-4 atom cells, two iterations, pw.x through
aiida-quantumespresso's PwBaseWorkChain; the first fit on collected real PW calculations (absolute energies)."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.build import bulk

from aiida_mlip_autopipe.active_learning.lineage import iteration_counts, structure_lineage
from aiida_mlip_autopipe.workflows.active_learning import PacemakerActiveLearningWorkChain
from tests.dft.helpers import KPOINTS_DISTANCE, OPTIONS, PW_PARAMETERS
from tests.helpers import FIT_OPTIONS, TINY_BACKEND

pytestmark = [pytest.mark.dft, pytest.mark.pacemaker]


@pytest.fixture(scope='module')
def qe_loop(pacemaker_code, pw_code, al_pseudo_family, qe_al_group):
    builder = PacemakerActiveLearningWorkChain.get_builder()
    builder.training.code = pacemaker_code
    builder.training.group = orm.Str(qe_al_group.label)
    builder.training.settings = orm.Dict(
        {
            'potential': {'functions': {'number_of_functions_per_element': 8}},
            'fit': {'maxiter': 10},
            'backend': TINY_BACKEND,
        }
    )
    builder.training.options = orm.Dict(FIT_OPTIONS)
    builder.training.min_structures = orm.Int(10)
    builder.training.plots = orm.Bool(False)
    builder.structures = {
        'two': orm.StructureData(ase=bulk('Al', 'fcc', a=4.04, orthorhombic=True)),
        'four': orm.StructureData(ase=bulk('Al', 'fcc', a=4.04, cubic=True)),
    }
    builder.exploration = orm.Dict({'temperatures_K': [900.0, 1800.0], 'steps': 60, 'rattle': 0.05, 'strain': 0.03})
    builder.selection = orm.Dict({'gamma_lo': 1.2, 'gamma_hi': 30.0, 'max_per_iteration': 3})
    builder.convergence = orm.Dict({'fraction_above_gamma_lo': 0.0})
    # every refit is taken, as in the EMT loop tests: fits of 10 iterations on a small test set scatter (the check
    # is tested on its own); the final potential's lineage then holds every label
    builder.refit = orm.Dict({'max_test_error_ratio': None})
    builder.max_iterations = orm.Int(2)
    builder.pw.pw.code = pw_code
    builder.pw.pw.parameters = orm.Dict(PW_PARAMETERS)
    builder.pw.pw.metadata.options = OPTIONS
    builder.pw.kpoints_distance = orm.Float(KPOINTS_DISTANCE)
    builder.pseudo_family = orm.Str(al_pseudo_family.label)
    return run_get_node(builder)[1]


def test_qe_loop_labels_with_pw_and_traces_every_label(qe_loop):
    assert qe_loop.is_finished_ok, (qe_loop.exit_status, qe_loop.exit_message)
    rows = qe_loop.outputs.iterations.get_list()
    assert len(rows) == 3 and [row['iteration'] for row in rows] == [0, 1, 2]
    assert all(row['labelled'] > 0 and row['failed'] == 0 for row in rows[1:])
    origins = structure_lineage(qe_loop.outputs.training_set)
    counts = iteration_counts(origins)
    from aiida_mlip_autopipe.potentials.lineage import potential_lineage

    dft = potential_lineage(qe_loop.outputs.potential).dft_calculations
    assert {calculation.process_label for calculation in dft} == {'PwCalculation'}
    # the first fit's group and every label added to the training data (the selected and the calibration frames)
    assert len(dft) == 28 + rows[1]['added'] + rows[2]['added']
    assert rows[1]['added'] >= rows[1]['labelled'] and rows[2]['added'] >= rows[2]['labelled']
    assert counts[1] == rows[1]['added'] and counts[2] == rows[2]['added']
    for origin in origins:
        assert origin.labeller.process_label == 'PwCalculation' and origin.labeller.is_finished_ok
        if origin.iteration:
            # the PwCalculation ran on exactly the configuration the exploration selected
            assert origin.labeller.inputs.structure.uuid == origin.structure.uuid
            assert origin.structure.creator.pk == rows[origin.iteration]['exploration']
            workchain = origin.labeller.caller
            assert workchain.process_label == 'PwBaseWorkChain' and workchain.caller.pk == qe_loop.pk


def test_qe_labels_are_absolute_dft_energies(qe_loop):
    training = qe_loop.outputs.training_set
    origins = structure_lineage(training)
    for origin, atoms in zip(origins, training.get_atoms(), strict=True):
        if origin.iteration:
            energy = origin.labeller.outputs.output_parameters['energy']
            assert atoms.get_potential_energy() == pytest.approx(energy, abs=1e-6)
            assert energy / len(atoms) < -20  # absolute DFT energies (tens of eV per atom)
    # the final potential predicts on the scale of the DFT labels (pacemaker's reference energy put back)
    from aiida_mlip_autopipe import get_calculator

    calculator = get_calculator(qe_loop.outputs.potential)
    for atoms in training.get_atoms()[-3:]:
        label = atoms.get_potential_energy()
        atoms.calc = calculator
        assert atoms.get_potential_energy() / len(atoms) == pytest.approx(label / len(atoms), abs=0.3)
    assert qe_loop.outputs.metrics['rmse_energy_train'] < 300  # meV/atom, 10 iterations of a tiny basis


#: aiida-quantumespresso's 'fast' protocol with the tests' pseudopotential family (which recommends no cutoffs)
PROTOCOL_OVERRIDES = {'pw': {'parameters': {'SYSTEM': {'ecutwfc': 20.0, 'ecutrho': 80.0}}}}


def test_protocol_labeller_runs_pw_and_collects(pw_code, al_pseudo_family):
    """``pw_protocol``: PwBaseWorkChain.get_builder_from_protocol per structure; a real pw.x run, collected."""
    from aiida_mlip_autopipe.labellers.pw import PwLabeller

    labeller = PwLabeller(
        protocol={'code': pw_code, 'protocol': 'fast', 'overrides': PROTOCOL_OVERRIDES, 'options': OPTIONS},
        pseudo_family=al_pseudo_family.label,
    )
    structure = orm.StructureData(ase=bulk('Al', 'fcc', a=4.0, orthorhombic=True))
    builder = labeller.builder(structure)
    assert builder.pw.parameters['SYSTEM']['smearing'] == 'cold'  # the protocol's
    assert builder.pw.parameters['SYSTEM']['ecutwfc'] == 20.0  # the overrides'
    _, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    collected = labeller.collect([node])
    calculation = next(child for child in node.called if child.process_label == 'PwCalculation')
    assert collected.get_sources() == [f'aiida:{calculation.uuid}']
    assert collected.get_atoms()[0].get_potential_energy() == pytest.approx(
        calculation.outputs.output_parameters['energy'], abs=1e-6
    )


def test_labels_with_other_dft_settings_than_the_first_fit_end_the_loop(
    pacemaker_code, pw_code, al_pseudo_family, qe_al_group
):
    """The first fit's data: pw.x with Marzari-Vanderbilt smearing; the protocol labels use cold smearing and other
    cutoffs: their energies do not belong together, the loop stops with a named code instead of training on both."""
    builder = PacemakerActiveLearningWorkChain.get_builder()
    builder.training.code = pacemaker_code
    builder.training.group = orm.Str(qe_al_group.label)
    builder.training.settings = orm.Dict({'potential': {'functions': {'number_of_functions_per_element': 5}}})
    builder.training.options = orm.Dict(FIT_OPTIONS)
    builder.training.min_structures = orm.Int(10)
    builder.training.plots = orm.Bool(False)
    builder.structures = {'four': orm.StructureData(ase=bulk('Al', 'fcc', a=4.04, cubic=True))}
    builder.exploration = orm.Dict({'temperatures_K': [1500.0], 'steps': 60, 'rattle': 0.1})
    builder.selection = orm.Dict({'gamma_lo': 1.05, 'gamma_hi': 50.0, 'max_per_iteration': 2})
    builder.convergence = orm.Dict({'fraction_above_gamma_lo': 0.0})
    builder.max_iterations = orm.Int(1)
    builder.pw_protocol = {
        'code': pw_code,
        'protocol': orm.Str('fast'),
        'overrides': orm.Dict(PROTOCOL_OVERRIDES),
        'options': orm.Dict(OPTIONS),
    }
    builder.pseudo_family = orm.Str(al_pseudo_family.label)
    _, node = run_get_node(builder)
    assert node.exit_status == PacemakerActiveLearningWorkChain.exit_codes.ERROR_COLLECTION_FAILED.status
    assert 'do not share the settings that decide absolute energies' in node.exit_message
    assert "smearing='cold' (others: 'mv')" in node.exit_message
    assert 'training_set' not in node.outputs
