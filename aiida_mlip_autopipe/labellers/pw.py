"""Quantum ESPRESSO labels: one aiida-quantumespresso ``PwBaseWorkChain`` per structure, collected from the
successful PW calculations (``collect_from_pw``), whose energy-deciding settings must agree with each other and with
the DFT data trained on before."""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict

from aiida_mlip_autopipe.collection.pw import collect_from_pw
from aiida_mlip_autopipe.labellers.base import Labeller

__all__ = ('PwLabeller',)


class PwLabeller(Labeller):
    """``PwBaseWorkChain`` per structure, from explicit inputs or from aiida-quantumespresso's protocol.

    :param inputs: the ``PwBaseWorkChain`` inputs without structure and pseudopotentials (the loop's ``pw``), which
        then come from ``pseudo_family``; or ``None`` with ``protocol``.
    :param protocol: ``{'code', 'protocol', 'overrides', 'options'}`` for ``PwBaseWorkChain.get_builder_from_protocol``
        (the loop's ``pw_protocol``); ``pseudo_family``, if given, goes into the overrides.
    :param reference: pks of the PW calculations the labels' settings must agree with (the DFT data trained on
        before); loaded in one query when collecting.
    """

    name = 'quantumespresso.pw'
    is_dft = True

    def __init__(
        self,
        inputs: dict | None = None,
        pseudo_family: str | None = None,
        protocol: dict | None = None,
        reference: list[int] | None = None,
    ):
        if (inputs is None) == (protocol is None):
            raise ValueError('give the PwBaseWorkChain inputs or a protocol, not both')
        self.inputs, self.pseudo_family, self.protocol = inputs, pseudo_family, protocol
        self.reference = list(reference or [])

    def builder(self, structure: orm.StructureData):
        """The ``PwBaseWorkChain`` builder (or inputs) for ``structure``."""
        from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain

        if self.protocol is not None:
            overrides = dict(self.protocol.get('overrides') or {})
            if self.pseudo_family is not None:
                overrides.setdefault('pseudo_family', self.pseudo_family)
            return PwBaseWorkChain.get_builder_from_protocol(
                self.protocol['code'],
                structure,
                protocol=self.protocol.get('protocol'),
                overrides=overrides,
                options=self.protocol.get('options'),
            )
        assert self.inputs is not None  # given whenever the protocol is not (checked in __init__)
        inputs = AttributeDict(dict(self.inputs))
        pw = AttributeDict(dict(inputs.pw))
        pw.structure = structure
        pw.pseudos = orm.Group.collection.get(label=self.pseudo_family).get_pseudos(structure=structure)
        inputs.pw = pw
        return inputs

    def launch(self, workchain, structure, label):
        from aiida.engine import ProcessBuilder
        from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain

        builder = self.builder(structure)
        if isinstance(builder, ProcessBuilder):
            builder['metadata'].call_link_label = label
            return workchain.submit(builder)
        builder.metadata = {**dict(builder.get('metadata', {})), 'call_link_label': label}
        return workchain.submit(PwBaseWorkChain, **builder)

    def collect(self, nodes):
        reference = []
        if self.reference:
            query = orm.QueryBuilder().append(orm.CalcJobNode, filters={'id': {'in': self.reference}})
            reference = query.all(flat=True)
        return collect_from_pw(nodes, reference=reference)
