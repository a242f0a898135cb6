"""Quantum ESPRESSO labels: one aiida-quantumespresso ``PwBaseWorkChain`` per structure, collected from the
successful PW calculations (``collect_from_pw``, with their energy-deciding settings checked to agree)."""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict

from aiida_mlip_autopipe.importers.pw import collect_from_pw
from aiida_mlip_autopipe.labellers.base import Labeller

__all__ = ('PwLabeller',)


class PwLabeller(Labeller):
    """``PwBaseWorkChain`` with the loop's ``pw`` inputs (code, parameters, k-points, options, ...) and the
    pseudopotentials of ``pseudo_family`` (an aiida-pseudo family label) for each structure's elements."""

    name = 'quantumespresso.pw'
    is_dft = True

    def __init__(self, inputs: dict, pseudo_family: str):
        self.inputs = inputs
        self.pseudo_family = pseudo_family

    def launch(self, workchain, structure, label):
        from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain

        inputs = AttributeDict({key: value for key, value in self.inputs.items()})
        pw = AttributeDict(dict(inputs.pw))
        pw.structure = structure
        pw.pseudos = orm.Group.collection.get(label=self.pseudo_family).get_pseudos(structure=structure)
        inputs.pw = pw
        inputs.metadata = {**dict(inputs.get('metadata', {})), 'call_link_label': label}
        return workchain.submit(PwBaseWorkChain, **inputs)

    def collect(self, nodes):
        return collect_from_pw(nodes)
