"""Real DFT in: pw.x results collected with their lineage, trained on, and reproduced on the labels' scale."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mlip_autopipe.collection.pw import CollectionError, collect_from_pw, last_pw_calculation
from tests.dft.helpers import PW_PARAMETERS, al_cells, pw_base_builder, run_pw_calculation
from tests.helpers import FIT_OPTIONS

pytestmark = pytest.mark.dft


def test_pw_results_are_collected_as_ase_reads_them(qe_al_group):
    from ase.io import read

    workchains = list(qe_al_group.nodes)
    training_set = collect_from_pw(workchains)
    assert len(training_set) == 28 and training_set.has_forces and training_set.has_stress
    structures = training_set.get_atoms()
    for workchain, atoms in list(zip(sorted(workchains, key=lambda n: n.pk), structures, strict=True))[:4]:
        calculation = last_pw_calculation(workchain)
        assert atoms.get_potential_energy() == pytest.approx(calculation.outputs.output_parameters['energy'])
        with calculation.outputs.retrieved.base.repository.as_path('aiida.out') as path:
            reference = read(path, format='espresso-out')  # ASE's own reader of the same pw.x output
        # the two readers convert Ry to eV with slightly different constants (1.5e-8 relative)
        assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy(), rel=1e-7)
        np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), atol=1e-6)
        # ASE reads the printed stress (fewer digits than the XML aiida-quantumespresso reads): 1e-6 eV/Å³ = 0.16 MPa
        np.testing.assert_allclose(atoms.get_stress(), reference.get_stress(), rtol=0, atol=1e-6)
    per_atom = [atoms.get_potential_energy() / len(atoms) for atoms in structures]
    assert max(per_atom) < -50  # absolute DFT energies: tens of eV per atom
    inputs = {link.node.pk for link in training_set.creator.base.links.get_incoming().all()}
    for workchain in workchains:
        assert last_pw_calculation(workchain).outputs.output_trajectory.pk in inputs


def test_failed_calculation_is_refused_or_skipped_and_counted(qe_al_group, qe_failed_calculation):
    nodes = [*qe_al_group.nodes, qe_failed_calculation]
    with pytest.raises(CollectionError, match=rf'did not finish successfully: <{qe_failed_calculation.pk}>'):
        collect_from_pw(nodes)
    collected = collect_from_pw(nodes, skip_failed=True)
    assert len(collected) == 28
    assert collected.base.extras.get('collection')['skipped_failed'] == [qe_failed_calculation.pk]


def test_mixed_kpoint_density_is_named(qe_al_group, pw_code, al_pseudo_family):
    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh([2, 2, 2])
    _, odd = run_get_node(pw_base_builder(pw_code, al_pseudo_family, al_cells(1, seed=7)[0], kpoints=kpoints))
    assert odd.is_finished_ok
    nodes = [*qe_al_group.nodes, odd]
    with pytest.raises(CollectionError, match=rf'<{last_pw_calculation(odd).pk}> k-point spacing'):
        collect_from_pw(nodes)
    assert len(collect_from_pw(nodes, allow_mixed_settings=True)) == 29


def test_every_frame_of_a_relax(pw_code, al_pseudo_family):
    atoms = al_cells(1, seed=3)[0]
    atoms.positions[0] += [0.15, 0.0, 0.05]
    parameters = {**PW_PARAMETERS, 'CONTROL': {**PW_PARAMETERS['CONTROL'], 'calculation': 'relax'}}
    relax = run_pw_calculation(pw_code, al_pseudo_family, atoms, parameters)
    assert relax.is_finished_ok, relax.exit_message
    frames = len(relax.outputs.output_trajectory.get_array('positions'))
    assert frames > 1
    every = collect_from_pw([relax], frames='all')
    last = collect_from_pw([relax])
    assert len(every) == frames and len(last) == 1
    assert every.get_sources()[-1].endswith(f':frame={frames - 1}')
    energies = [atoms.get_potential_energy() for atoms in every.get_atoms()]
    assert energies[-1] == pytest.approx(relax.outputs.output_parameters['energy'])
    assert energies[0] > energies[-1]  # the relaxation lowered the energy


@pytest.mark.pacemaker
def test_potential_reproduces_held_out_dft_energies(qe_al_group, qe_failed_calculation, pacemaker_code):
    """Trained on absolute QE energies (-56 eV/atom): the stored potential gives the labels' scale."""
    from aiida_mlip_autopipe.potentials.calculator import get_calculator
    from aiida_mlip_autopipe.potentials.lineage import potential_lineage
    from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain

    group = orm.Group(label='qe-al-with-failure').store()
    group.add_nodes([*qe_al_group.nodes, qe_failed_calculation])
    settings = {
        'potential': {
            'bonds': {'ALL': {'radbase': 'SBessel', 'radparameters': [5.25], 'rcut': 5.0, 'dcut': 0.01}},
            'functions': {
                'number_of_functions_per_element': 12,
                'ALL': {'nradmax_by_orders': [8, 3, 2], 'lmax_by_orders': [0, 2, 1]},
            },
        },
        'fit': {'maxiter': 60, 'loss': {'kappa': 0.3}},
    }
    inputs = {
        'code': pacemaker_code,
        'settings': orm.Dict(settings),
        'options': orm.Dict(FIT_OPTIONS),
        'group': orm.Str(group.label),
        'min_structures': orm.Int(10),
        'test_fraction': orm.Float(0.25),
        'plots': orm.Bool(False),
    }
    _, refused = run_get_node(PacemakerTrainingWorkChain, **inputs)
    assert refused.exit_status == PacemakerTrainingWorkChain.exit_codes.ERROR_FAILED_DFT.status
    assert str(qe_failed_calculation.pk) in refused.exit_message

    _, node = run_get_node(PacemakerTrainingWorkChain, **inputs, skip_failed_dft=orm.Bool(True))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    potential, metrics = node.outputs.potential, node.outputs.metrics.get_dict()
    reference = potential.base.attributes.get('reference_energy')
    assert reference['Al'] < -50 and metrics['reference_energy'] == reference  # computed by pacemaker, kept
    assert (
        orm.QueryBuilder()
        .append(orm.SinglefileData, filters={'id': potential.pk, 'attributes.reference_energy.Al': {'<': -50}})
        .count()
        == 1
    )

    calculator = get_calculator(potential)
    errors_e, errors_f = [], []
    for atoms in node.outputs.test_set.get_atoms():
        label_e, label_f = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = calculator
        errors_e.append((atoms.get_potential_energy() - label_e) / len(atoms))
        errors_f.append((atoms.get_forces() - label_f).ravel())
    rmse_e = 1000 * np.sqrt(np.mean(np.square(errors_e)))
    rmse_f = 1000 * np.sqrt(np.mean(np.square(np.concatenate(errors_f))))
    print(
        f'QE Al held-out: calculator {rmse_e:.3f} meV/atom, {rmse_f:.2f} meV/A; '
        f'reported {metrics["rmse_energy_test"]:.3f} meV/atom, {metrics["rmse_forces_test"]:.2f} meV/A'
    )
    assert rmse_e <= 3 * metrics['rmse_energy_test'] + 1.0
    assert rmse_f <= 3 * metrics['rmse_forces_test'] + 1.0
    predictions = node.outputs.test_predictions
    assert np.all(predictions.get_array('energy') / predictions.get_array('natoms') < -50)  # labels' scale

    lineage = potential_lineage(potential)
    expected = {last_pw_calculation(workchain).pk for workchain in qe_al_group.nodes}
    assert {calc.pk for calc in lineage.dft_calculations} == expected
