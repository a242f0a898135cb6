"""Collecting DFT results already in the database: PW outputs (units, stress sign) and the generic form."""

import numpy as np
import pytest
from aiida import orm
from aiida.engine import ProcessState

from aiida_mlip_autopipe.collection.pw import CollectionError, collect_from_pw, collect_structures
from aiida_mlip_autopipe.data.training_set import TrainingSetError
from tests.helpers import emt_labelled, make_pw_calculation


def test_pw_results_are_collected_with_ase_units_and_sign(session_localhost):
    compressed, e1, f1, s1 = emt_labelled(0.97, seed=1)
    stretched, e2, f2, s2 = emt_labelled(1.03, seed=2)
    assert np.all(np.diag(s1) < 0) and np.all(np.diag(s2) > 0)  # ASE: negative under compression
    calculations = [
        make_pw_calculation(session_localhost, *args) for args in ((compressed, e1, f1, s1), (stretched, e2, f2, s2))
    ]
    training_set = collect_from_pw(calculations)
    assert len(training_set) == 2 and training_set.has_stress and training_set.has_forces
    first, second = training_set.get_atoms()
    assert first.get_potential_energy() == pytest.approx(e1)
    np.testing.assert_allclose(first.get_forces(), f1)
    np.testing.assert_allclose(first.get_stress(voigt=False), s1, atol=1e-12)
    np.testing.assert_allclose(second.get_stress(voigt=False), s2, atol=1e-12)
    assert np.all(first.get_stress()[:3] < 0)  # compressed: ASE sign, not QE's
    np.testing.assert_allclose(first.positions, compressed.positions)
    assert training_set.get_sources() == [f'aiida:{calc.uuid}' for calc in calculations]
    # every source node is an input of the calcfunction, so the lineage reaches the calculations; these hand-built
    # trajectories have no `energy` array (real ones do), so the output_parameters come in too
    collector = training_set.creator
    inputs = {link.node.pk for link in collector.base.links.get_incoming().all()}
    for calc in calculations:
        assert {calc.outputs.output_parameters.pk, calc.outputs.output_trajectory.pk} <= inputs


def test_large_collections_are_batched_and_merged_with_lineage(session_localhost, monkeypatch):
    """Batches of BATCH calculations per calcfunction, then one merge: the lineage still reaches every one."""
    from aiida_mlip_autopipe.collection import pw as collect
    from aiida_mlip_autopipe.potentials.lineage import _ancestors

    monkeypatch.setattr(collect, 'BATCH', 2)
    labelled = [emt_labelled(1.0 + 0.01 * index, seed=10 + index) for index in range(5)]
    calculations = [make_pw_calculation(session_localhost, *args) for args in labelled]
    training_set = collect_from_pw(calculations)
    assert training_set.creator.process_label == 'merge_collected'
    assert training_set.get_sources() == [f'aiida:{calc.uuid}' for calc in calculations]
    energies = [atoms.get_potential_energy() for atoms in training_set.get_atoms()]
    assert energies == pytest.approx([energy for _, energy, _, _ in labelled])
    assert {calc.pk for calc in _ancestors(training_set, orm.CalcJobNode)} == {calc.pk for calc in calculations}


def test_failed_calculations_are_refused(session_localhost):
    atoms, energy, forces, stress = emt_labelled(1.0, seed=3)
    failed = make_pw_calculation(session_localhost, atoms, energy, forces, stress, finished=False)
    with pytest.raises(TrainingSetError, match=rf'did not finish successfully: <{failed.pk}>'):
        collect_from_pw([failed])
    with pytest.raises(TrainingSetError, match='no successful DFT calculations'):
        collect_from_pw([failed], skip_failed=True)


def test_generic_structure_energy_forces(aiida_profile):
    atoms, energy, forces, stress = emt_labelled(1.01, seed=4)
    forces_node = orm.ArrayData()
    forces_node.set_array('forces', forces)
    stress_node = orm.ArrayData()
    stress_node.set_array('stress', stress)
    entry = {
        'structure': orm.StructureData(ase=atoms),
        'energy': orm.Float(energy),
        'forces': forces_node,
        'stress': stress_node,
    }
    training_set = collect_structures([entry, {**entry, 'energy': orm.Float(energy + 0.1)}])
    assert len(training_set) == 2
    restored = training_set.get_atoms()
    assert restored[1].get_potential_energy() == pytest.approx(energy + 0.1)
    np.testing.assert_allclose(restored[0].get_stress(voigt=False), stress, atol=1e-12)
    assert training_set.get_sources()[0] == f'aiida:{entry["structure"].uuid}'
    bad = orm.ArrayData()
    bad.set_array('forces', np.full((4, 3), np.nan))
    with pytest.raises(TrainingSetError, match='forces contain NaN'):
        collect_structures([{**entry, 'forces': bad}])


def finished_process(node_class, process_type: str, label: str):
    node = node_class(process_type=process_type)
    node.set_process_label(label)
    node.set_process_state(ProcessState.FINISHED)
    node.set_exit_status(0)
    return node.store()


def test_processes_that_are_not_pw_results_are_named(session_localhost):
    """Issue 20: another plugin's calculation, or a workflow that never ran pw.x, is named as unsupported (the
    training workflow's exit 204), not reported as a failed DFT calculation; a workflow around PW is collected."""
    other = orm.CalcJobNode(computer=session_localhost, process_type='aiida.calculations:core.arithmetic.add')
    other.set_process_label('ArithmeticAddCalculation')
    other.set_process_state(ProcessState.FINISHED)
    other.set_exit_status(0)
    other.store()
    workflow = finished_process(orm.WorkflowNode, 'aiida.workflows:core.arithmetic.multiply_add', 'MultiplyAdd')
    wrapper = finished_process(orm.WorkflowNode, 'aiida.workflows:custom.relax', 'MyRelaxWorkChain')
    wrapped = make_pw_calculation(session_localhost, *emt_labelled(1.0, seed=5), caller=wrapper)
    pw = make_pw_calculation(session_localhost, *emt_labelled(1.01, seed=6))
    with pytest.raises(CollectionError) as info:
        collect_from_pw([pw, other, workflow, wrapper])
    assert info.value.kind == 'unsupported' and info.value.pks == [other.pk, workflow.pk]
    assert str(info.value) == (
        f'not PwCalculation / PwBaseWorkChain results: ArithmeticAddCalculation<{other.pk}>, MultiplyAdd<{workflow.pk}>'
    )
    collected = collect_from_pw([pw, wrapper])
    assert len(collected) == 2 and wrapped.is_finished_ok
