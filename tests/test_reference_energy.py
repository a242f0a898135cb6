"""Reference energies: pacemaker's metadata to per-element E0, written into the .yace by the parser."""

import pytest

from aiida_mlip_autopipe.potentials.reference_energy import ReferenceEnergyError, e0_per_element, read_e0, with_e0

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
