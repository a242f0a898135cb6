"""``ase:emt``: label with ASE's EMT calculator in a calcfunction (tests, demos, a quick loop; not DFT)."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ExitCode, Process, calcfunction
from ase.calculators.emt import parameters as emt_parameters

from aiida_mlip_autopipe.collection.pw import merge_collected
from aiida_mlip_autopipe.data.sources import node_source
from aiida_mlip_autopipe.data.training_set import TrainingSetData, TrainingSetError
from aiida_mlip_autopipe.labellers.base import Labeller

__all__ = ('EMT_ELEMENTS', 'EMTLabeller', 'label_with_emt')

#: the elements ASE's EMT has parameters for
EMT_ELEMENTS = frozenset(emt_parameters)

#: exit status of a structure EMT cannot label (an element it lacks, atoms too close)
EMT_FAILED = 470


@calcfunction
def label_with_emt(structure: orm.StructureData) -> TrainingSetData | ExitCode:
    """Energy, forces and stress of ``structure`` from ASE's EMT (not DFT), as a one-structure ``TrainingSetData``
    whose source is this calcfunction."""
    from ase.calculators.emt import EMT

    process = Process.current()
    assert isinstance(process, Process)  # this calcfunction's process (plumpy types it as its own base class)
    atoms = structure.get_ase()
    atoms.calc = EMT()
    try:
        atoms.get_potential_energy()
        labelled = TrainingSetData.from_atoms([atoms], sources=[node_source(process.node.uuid)])
    except (NotImplementedError, KeyError, TrainingSetError, ValueError) as exception:
        return ExitCode(EMT_FAILED, f'EMT cannot label {structure.get_formula()}: {exception}')
    labelled.base.attributes.set('labeller', 'ase:emt')
    labelled.base.attributes.set('dft', False)
    return labelled


class EMTLabeller(Labeller):
    """ASE's EMT, run at once in the workflow's step (milliseconds per structure; nothing to submit)."""

    name = 'ase:emt'
    is_dft = False

    def launch(self, workchain, structure, label):
        # aiida-core's ParamSpec for process functions leaves out the ``metadata`` input every one of them takes
        _, node = label_with_emt.run_get_node(structure, metadata={'call_link_label': label})  # type: ignore[call-arg]
        return node

    def collect(self, nodes):
        parts = {f'part_{index:05d}': node.outputs.result for index, node in enumerate(nodes)}
        return merge_collected(**parts)
