"""Validation against real pw.x: the EOS of Al with Quantum ESPRESSO as the reference, every reference number a
PwCalculation of the graph, and the second validation reusing them (no new DFT)."""

from __future__ import annotations

import pytest

from tests.dft.helpers import OPTIONS, PW_PARAMETERS


def pw_calculations() -> int:
    from aiida import orm

    query = orm.QueryBuilder().append(
        orm.CalcJobNode, filters={'process_type': 'aiida.calculations:quantumespresso.pw'}
    )
    return query.count()


def test_eos_with_pw_reference(tiny_fit, pw_code, al_pseudo_family):
    from aiida import orm
    from aiida.engine import run_get_node
    from ase.build import bulk

    from aiida_mlip_autopipe.workflows.validation import PotentialValidationWorkChain

    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh([6, 6, 6])  # one mesh for every volume: the EOS points share their settings
    inputs = {
        'potential': tiny_fit.outputs.potential,
        'structures': {'Al': orm.StructureData(ase=bulk('Al', 'fcc', a=4.04))},
        'properties': orm.Dict({'eos': {'points': 5, 'volume_range': 0.06}}),
        'pw': {
            'pw': {'code': pw_code, 'parameters': orm.Dict(PW_PARAMETERS), 'metadata': {'options': OPTIONS}},
            'kpoints': kpoints,
        },
        'pseudo_family': orm.Str(al_pseudo_family.label),
    }
    before = pw_calculations()
    _, node = run_get_node(PotentialValidationWorkChain, **inputs)
    assert node.is_finished_ok, node.exit_message
    assert pw_calculations() - before == 5
    row = node.outputs.properties['Al']['B0']
    assert 50 < row['reference'] < 110, row  # PBE Al is about 77 GPa; this tiny pseudopotential and cutoff differ
    labels = node.outputs.reference_labels
    uuids = [source.removeprefix('aiida:') for source in labels.get_sources()]
    query = orm.QueryBuilder().append(orm.CalcJobNode, filters={'uuid': {'in': uuids}}, project='process_type')
    assert query.all(flat=True) == ['aiida.calculations:quantumespresso.pw'] * 5
    called = [child.process_label for child in node.called]
    assert called.count('PwBaseWorkChain') == 5

    before = pw_calculations()
    _, again = run_get_node(PotentialValidationWorkChain, **inputs, reference=labels)
    assert again.is_finished_ok, again.exit_message
    assert pw_calculations() == before
    assert again.outputs.properties['Al']['B0']['reference'] == pytest.approx(row['reference'])
