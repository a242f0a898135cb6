"""The one reader of pacemaker's B-basis YAML potentials (``output_potential.yaml``, ``interim_potential_*.yaml``):
elements, cutoff, number of functions and metadata, for the parser, the reference energy and the calculation's
check of an ``initial_potential``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

__all__ = ('BBasisError', 'BBasisSummary', 'read_bbasis')


class BBasisError(ValueError):
    """The text is not a B-basis potential; the message is one line saying why."""


@dataclass(frozen=True)
class BBasisSummary:
    """What a B-basis potential says about itself."""

    elements: list[str]
    """The elements of its single-element species blocks, in file order."""
    cutoff: float | None
    """The largest ``rcutij`` of its blocks (Å)."""
    num_functions: int
    """The number of basis functions (``nbody`` entries) over all blocks."""
    metadata: dict[str, str] = field(default_factory=dict)
    """Its ``metadata`` block (pacemaker keeps e.g. ``reference_energy`` there as a JSON string)."""
    has_global: bool = True
    """Whether it has pacemaker's ``global`` block (which its loader requires)."""

    def as_dict(self) -> dict[str, Any]:
        """Elements, cutoff, number of functions and metadata, as the parser stores them."""
        return {
            'elements': self.elements,
            'cutoff': self.cutoff,
            'num_functions': self.num_functions,
            'metadata': self.metadata,
        }


def read_bbasis(text: str | bytes) -> BBasisSummary:
    """Read a B-basis YAML potential; :class:`BBasisError` when it is not YAML or has no ``species`` blocks (each a
    mapping with a ``speciesblock`` string)."""
    try:
        if isinstance(text, bytes):
            text = text.decode('utf-8')
        document = YAML(typ='safe').load(text)  # libyaml where available: a potential can be megabytes
    except (YAMLError, UnicodeDecodeError) as exception:
        raise BBasisError(f'it is not readable YAML: {" ".join(str(exception).split())[:200]}') from exception
    blocks = document.get('species') if isinstance(document, dict) else None
    if (
        not isinstance(blocks, list)
        or not blocks
        or not all(isinstance(block, dict) and isinstance(block.get('speciesblock'), str) for block in blocks)
    ):
        keys = ', '.join(map(str, document)) if isinstance(document, dict) else type(document).__name__
        raise BBasisError(
            f'it is not a B-basis potential (it needs the blocks global and species with speciesblock entries; it '
            f'has: {keys or "nothing"})'
        )
    elements: list[str] = []
    cutoffs, num_functions = [], 0
    for block in blocks:
        members = block['speciesblock'].split()
        if len(members) == 1 and members[0] not in elements:
            elements.append(members[0])
        num_functions += len(block.get('nbody') or [])
        if 'rcutij' in block:
            cutoffs.append(float(block['rcutij']))
    metadata = document.get('metadata')
    return BBasisSummary(
        elements=elements,
        cutoff=max(cutoffs) if cutoffs else None,
        num_functions=num_functions,
        metadata={str(key): str(value) for key, value in metadata.items()} if isinstance(metadata, dict) else {},
        has_global=isinstance(document.get('global'), dict),
    )
