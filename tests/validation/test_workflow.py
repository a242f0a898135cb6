"""PotentialValidationWorkChain end to end: a real tiny pacemaker potential against EMT, reference reuse, bad
inputs refused in one line."""

from __future__ import annotations

import pytest

PROPERTIES = {'eos': {}, 'elastic': {}, 'vacancy': {'steps': 20}, 'phonons': {'npoints': 30, 'mesh': 6}}


def copper_structure():
    from aiida import orm
    from ase.build import bulk

    return orm.StructureData(ase=bulk('Cu', 'fcc', a=3.6, cubic=True))


@pytest.fixture(scope='module')
def validation(tiny_fit):
    """One validation of the tiny Cu-Al potential on Cu against EMT, and the number of EMT labels it made."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlip_autopipe.workflows.validation import PotentialValidationWorkChain

    before = _emt_count()
    inputs = {
        'potential': tiny_fit.outputs.potential,
        'structures': {'Cu': copper_structure()},
        'properties': orm.Dict({**PROPERTIES, 'md': {'temperatures': [300.0], 'steps': 20}}),
        'labeller': orm.Str('ase:emt'),
    }
    _, node = run_get_node(PotentialValidationWorkChain, **inputs)
    return node, _emt_count() - before


def _emt_count() -> int:
    from aiida import orm

    query = orm.QueryBuilder().append(
        orm.CalcFunctionNode, filters={'process_type': 'aiida_mlip_autopipe.labellers.emt.label_with_emt'}
    )
    return query.count()


def test_validation_end_to_end(validation):
    """The table has every quantity with both sides; the arrays and plots are outputs; the reference labels trace
    to the EMT calcfunctions."""
    node, labelled = validation
    assert node.is_finished_ok, node.exit_message
    assert labelled == 7 + 24 + 2 + 1  # EOS points, strains, two vacancy cells, one phonopy displacement
    table = node.outputs.properties.get_dict()['Cu']
    for quantity in ('V0', 'B0', 'Bp', 'C11', 'C12', 'C44', 'E_vac', 'E_vac_relaxed', 'phonon_rmse', 'lost_atoms'):
        assert set(table[quantity]) == {'potential', 'reference', 'error', 'relative_error', 'unit'}, quantity
    assert table['B0']['reference'] == pytest.approx(134.1, abs=1.5)  # EMT Cu
    if table['B0']['potential'] is None:  # the tiny fit's E(V) may have no minimum: said, not raised
        assert table['B0']['error'] is None
        potential = node.base.links.get_outgoing(link_label_filter='potential_Cu').one().node
        assert potential.outputs.results['eos_failed']
    else:
        assert table['B0']['error'] == pytest.approx(table['B0']['potential'] - table['B0']['reference'])
    assert table['C11']['error'] == pytest.approx(table['C11']['potential'] - table['C11']['reference'])
    assert table['phonon_rmse']['unit'] == 'THz' and table['phonon_rmse']['potential'] >= 0
    assert table['lost_atoms']['potential'] in (0, 1)
    assert set(node.outputs.plots) == {'Cu_eos', 'Cu_phonons', 'Cu_md'}
    assert node.outputs.plots.Cu_eos.get_content(mode='rb').startswith(b'\x89PNG')
    reference = node.outputs.arrays.Cu_reference
    assert reference.get_array('phonon_frequencies').shape == (30, 3)
    assert len(node.outputs.reference_labels) == labelled
    sources = node.outputs.reference_labels.get_sources()
    assert all(source.startswith('aiida:') for source in sources)


def test_validation_reuses_reference(validation, tiny_fit):
    """A second validation given the first's reference_labels labels nothing: no new reference process."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlip_autopipe.workflows.validation import PotentialValidationWorkChain

    first, _ = validation
    before = _emt_count()
    _, node = run_get_node(
        PotentialValidationWorkChain,
        potential=tiny_fit.outputs.potential,
        structures={'Cu': copper_structure()},
        properties=orm.Dict({'eos': {}, 'phonons': {'npoints': 30, 'mesh': 6}}),
        labeller=orm.Str('ase:emt'),
        reference=first.outputs.reference_labels,
    )
    assert node.is_finished_ok, node.exit_message
    assert _emt_count() == before
    assert node.outputs.reference_labels.uuid == first.outputs.reference_labels.uuid
    first_table, table = first.outputs.properties['Cu'], node.outputs.properties['Cu']
    assert table['B0'] == pytest.approx(first_table['B0'])
    assert table['phonon_rmse'] == pytest.approx(first_table['phonon_rmse'])


@pytest.mark.parametrize(
    ('change', 'message'),
    [
        ({'properties': {'eos': {}, 'bandgap': {}}}, "properties: unknown 'bandgap'; known are eos"),
        ({'structures': {}}, 'structures: give at least one StructureData'),
        ({'structures': 'Ni'}, 'structures.crystal: Ni not in the potential (it has Al, Cu)'),
        ({'labeller': 'ase:lj'}, "labeller='ase:lj': known are ase:emt"),
    ],
)
def test_validation_refuses(tiny_fit, change, message):
    """Bad inputs: one line naming the input, nothing run."""
    from aiida import orm
    from aiida.engine import run_get_node
    from ase.build import bulk

    from aiida_mlip_autopipe.workflows.validation import PotentialValidationWorkChain

    structures = {'Cu': copper_structure()}
    if 'structures' in change:
        given = change['structures']
        structures = {'crystal': orm.StructureData(ase=bulk(given, 'fcc', a=3.52))} if given else {}
    inputs = {
        'potential': tiny_fit.outputs.potential,
        'structures': structures,
        'properties': orm.Dict(change.get('properties', {'eos': {}})),
        'labeller': orm.Str(change.get('labeller', 'ase:emt')),
    }
    nodes = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
        run_get_node(PotentialValidationWorkChain, **inputs)
    assert orm.QueryBuilder().append(orm.Node).count() == nodes  # nothing stored


def test_validation_refuses_reference_and_stress(validation, tiny_fit):
    """Elastic constants with a pw reference that computes no stress; a `reference` made by another labeller."""
    from aiida import orm

    from aiida_mlip_autopipe.workflows.validation import validate_inputs

    inputs = {
        'potential': tiny_fit.outputs.potential,
        'structures': {'Cu': copper_structure()},
        'properties': orm.Dict({'elastic': {}}),
        'pw': {'pw': {'parameters': orm.Dict({'CONTROL': {'calculation': 'scf'}})}},
        'pseudo_family': orm.Str('family'),
    }
    assert validate_inputs(inputs, None) == (
        'properties.elastic needs the stress: set pw.pw.parameters CONTROL.tstress = True'
    )
    emt_labels = validation[0].outputs.reference_labels
    inputs['pw']['pw']['parameters'] = orm.Dict({'CONTROL': {'tstress': True}})
    assert validate_inputs({**inputs, 'reference': emt_labels}, None) == (
        "reference: labelled by ase:emt, not by this validation's quantumespresso.pw"
    )


def test_validation_md_only(tiny_fit):
    """MD alone needs no reference single point: no label, no reference_labels; EMT's own MD is the reference."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlip_autopipe.workflows.validation import PotentialValidationWorkChain

    before = _emt_count()
    _, node = run_get_node(
        PotentialValidationWorkChain,
        potential=tiny_fit.outputs.potential,
        structures={'Cu': copper_structure()},
        properties=orm.Dict({'md': {'temperatures': [300.0], 'steps': 10, 'min_distance': 1.0}}),
        labeller=orm.Str('ase:emt'),
    )
    assert node.is_finished_ok, node.exit_message
    assert _emt_count() == before and 'reference_labels' not in node.outputs
    row = node.outputs.properties['Cu']['lost_atoms']
    assert row['reference'] == 0 and row['unit'] == 'runs'
    assert set(node.outputs.plots) == {'Cu_md'}
