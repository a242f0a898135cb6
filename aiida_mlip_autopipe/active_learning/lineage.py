"""Per-structure lineage of an active-learning loop's data: for every structure of a training set, the iteration that
added it, the exploration calculation (trajectory, step, gamma) that proposed it and the process that labelled it.

The chain is read from provenance alone: a structure's source names its labelling process (``aiida:<uuid>``); that
process took the selected ``StructureData`` as input; the exploration calculation created it (attribute
``exploration``: trajectory, step, gamma, temperature) and was called as ``explore_iteration_NN``
(``explore_iteration_NN_job_MM`` when an iteration runs several jobs).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiida import orm
from aiida.common.links import LinkType

from aiida_mlip_autopipe.data.sources import parse_node_source
from aiida_mlip_autopipe.data.training_set import TrainingSetData

__all__ = ('StructureOrigin', 'iteration_counts', 'structure_lineage')

EXPLORATION_LINK = re.compile(r'^explore_iteration_(\d+)(?:_job_\d+)?$')


@dataclass
class StructureOrigin:
    """Where one structure of a training set came from."""

    index: int
    """Its index in the training set."""
    source: str
    """Its source string (a file row, or the AiiDA process that labelled it)."""
    iteration: int
    """The loop iteration that added it (0: the first fit's data)."""
    labeller: orm.ProcessNode | None = None
    """The process that labelled it (a loop's label, or a DFT calculation collected for the first fit)."""
    exploration: orm.CalcJobNode | None = None
    """The exploration calculation that proposed it."""
    structure: orm.StructureData | None = None
    """The selected configuration the labeller was given."""
    trajectory: int | None = None
    step: int | None = None
    gamma: float | None = None
    temperature_K: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """A plain row (pks for nodes)."""
        return {
            'index': self.index,
            'iteration': self.iteration,
            'source': self.source,
            'labeller': self.labeller.pk if self.labeller is not None else None,
            'labeller_type': self.labeller.process_label if self.labeller is not None else None,
            'exploration': self.exploration.pk if self.exploration is not None else None,
            'trajectory': self.trajectory,
            'step': self.step,
            'gamma': self.gamma,
            'temperature_K': self.temperature_K,
        }


def _nodes_by_uuid(uuids: set[str]) -> dict[str, orm.Node]:
    if not uuids:
        return {}
    query = orm.QueryBuilder().append(orm.Node, filters={'uuid': {'in': sorted(uuids)}})
    return {node.uuid: node for node in query.all(flat=True)}


def _iteration_of(exploration: orm.CalcJobNode) -> int | None:
    for link in exploration.base.links.get_incoming(link_type=LinkType.CALL_CALC).all():
        match = EXPLORATION_LINK.match(link.link_label)
        if match:
            return int(match.group(1))
    return None


def structure_lineage(training_set: TrainingSetData) -> list[StructureOrigin]:
    """Return the origin of every structure of ``training_set`` (e.g. a loop's ``training_set`` output)."""
    sources = training_set.get_sources()
    uuids = [parse_node_source(source) for source in sources]
    nodes = _nodes_by_uuid({uuid for uuid in uuids if uuid})
    origins = []
    for index, (source, uuid) in enumerate(zip(sources, uuids, strict=True)):
        origin = StructureOrigin(index=index, source=source, iteration=0)
        labeller = nodes.get(uuid) if uuid else None
        if isinstance(labeller, orm.ProcessNode):
            origin.labeller = labeller
            structure = labeller.inputs.structure if 'structure' in labeller.inputs else None
            info = structure.base.attributes.get('exploration', None) if structure is not None else None
            if structure is not None and info is not None and isinstance(structure.creator, orm.CalcJobNode):
                origin.structure, origin.exploration = structure, structure.creator
                origin.iteration = _iteration_of(structure.creator) or 0
                origin.trajectory, origin.step = info['trajectory'], info['step']
                origin.gamma, origin.temperature_K = info['gamma'], info['temperature_K']
        origins.append(origin)
    return origins


def iteration_counts(origins: list[StructureOrigin]) -> dict[int, int]:
    """Structures per iteration that added them."""
    return dict(sorted(Counter(origin.iteration for origin in origins).items()))
