"""The labeller interface of the active-learning loop."""

from __future__ import annotations

from abc import ABC, abstractmethod

from aiida import orm
from aiida.engine import WorkChain

from aiida_mlip_autopipe.data.training_set import TrainingSetData

__all__ = ('LABELLERS', 'Labeller')

#: the labellers named by the ``labeller`` input of the loop and the validation (DFT comes as the ``pw`` namespace)
LABELLERS = ('ase:emt',)


class Labeller(ABC):
    """Give structures energies and forces, one process per structure, and collect the results with provenance.

    ``launch`` starts (``workchain.submit``) or runs one labelling process per structure and returns its node;
    the loop waits for submitted ones. ``collect`` turns the successful nodes into one ``TrainingSetData`` whose
    structures each name the process that labelled them (``aiida:<uuid>`` sources) and whose creator takes the
    labels as input links.
    """

    #: the label recorded on the loop's outputs
    name: str = ''
    #: ``False`` for model labels (EMT): the training data is then not DFT
    is_dft: bool = True

    @abstractmethod
    def launch(self, workchain: WorkChain, structure: orm.StructureData, label: str) -> orm.ProcessNode:
        """Label ``structure``: return the process node (finished, or submitted from ``workchain``)."""

    @abstractmethod
    def collect(self, nodes: list[orm.ProcessNode]) -> TrainingSetData:
        """One ``TrainingSetData`` of the successfully finished labelling ``nodes``."""
