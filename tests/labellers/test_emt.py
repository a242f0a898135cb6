"""The EMT labeller (a calcfunction): labels what ASE's EMT knows, names what it does not."""

from aiida import orm
from ase.build import bulk

from aiida_mlip_autopipe.labellers.emt import label_with_emt


def test_emt_labeller_names_what_it_cannot_label(aiida_profile):
    result, node = label_with_emt.run_get_node(orm.StructureData(ase=bulk('Cu', 'fcc', a=3.6)))
    assert node.is_finished_ok and result.base.attributes.get('dft') is False
    assert result.get_sources() == [f'aiida:{node.uuid}']
    _, failed = label_with_emt.run_get_node(orm.StructureData(ase=bulk('Fe', 'bcc', a=2.87)))
    assert failed.exit_status == 470 and failed.exit_message.startswith('EMT cannot label Fe')
