"""Provenance queries over trained potentials: where a potential came from, and which potentials match.

``potential_lineage(potential)`` answers "which data, settings and code trained this potential?": the source
files (SHA-256, file name) with the row ids / frames used from each, the DFT calculations whose results were
collected, the settings and the code. ``find_potentials(...)`` answers "which potentials for Cu reach a force
RMSE under 30 meV/Å?" or "which potentials were trained on this file / calculation?". Both use ``QueryBuilder``
on links and attributes; the per-structure sources come from one array of the training set node.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiida import orm

from aiida_mlip_autopipe.data.sources import SHA_PREFIX, parse_file_source
from aiida_mlip_autopipe.data.training_set import TrainingSetData

__all__ = ('PotentialLineage', 'active_set_of', 'find_potentials', 'potential_lineage')

CALCULATION_TYPE = 'aiida.calculations:mlip_autopipe.pacemaker'
PLUGIN_CALCULATIONS = 'aiida.calculations:mlip_autopipe.'
PLUGIN_WORKFLOWS = 'aiida.workflows:mlip_autopipe.'
SHELL_JOB = 'aiida.calculations:core.shell'  # aiida-shell's ShellJob


@dataclass
class PotentialLineage:
    """Where a potential came from."""

    potential: orm.SinglefileData
    calculation: orm.CalcJobNode
    training_set: TrainingSetData
    test_set: TrainingSetData | None
    settings: dict[str, Any]
    code: orm.AbstractCode
    initial_potential: orm.SinglefileData | None
    files: list[dict[str, Any]] = field(default_factory=list)
    """Each source file: ``uuid``, ``sha256``, ``filename``, ``format`` and the ``rows`` (or frames) used, also
    apart: ``train_rows`` and ``test_rows``."""
    dft_calculations: list[orm.CalcJobNode] = field(default_factory=list)
    """DFT calculations whose results were collected into the training data."""
    source_nodes: list[TrainingSetData] = field(default_factory=list)
    """The TrainingSetData nodes merged into the training and test sets."""

    def rows(self, sha256: str) -> list[int]:
        """Return the ASE database row ids (or extxyz frames) used from the file with this SHA-256."""
        for entry in self.files:
            if entry['sha256'] == sha256:
                return entry['rows']
        return []


def _calculation_of(potential: orm.SinglefileData) -> orm.CalcJobNode:
    creator = potential.creator
    if creator is None or creator.process_type != CALCULATION_TYPE:
        raise ValueError(f'node<{potential.pk}> was not created by a PacemakerCalculation')
    return creator


def _plugin_job(calculation: orm.CalcJobNode) -> bool:
    """The plugin's own jobs among a data set's ancestors (earlier fits, explorations, ``pace_activeset``): not DFT.

    Decided by process types, never by labels (a user's code may have any label): one of the plugin's calculations,
    or a tool it runs through aiida-shell (``pace_activeset``) called by one of the plugin's workflows.
    """
    if (calculation.process_type or '').startswith(PLUGIN_CALCULATIONS):
        return True
    caller = calculation.caller
    return (
        calculation.process_type == SHELL_JOB
        and caller is not None
        and (caller.process_type or '').startswith(PLUGIN_WORKFLOWS)
    )


def _ancestors(node: orm.Node, cls: type, filters: dict | None = None) -> list:
    query = orm.QueryBuilder().append(orm.Node, filters={'id': node.pk}, tag='start')
    query.append(cls, with_descendants='start', filters=filters or {}, project='*')
    return sorted({n.pk: n for n in query.all(flat=True)}.values(), key=lambda n: n.pk)


def potential_lineage(potential: orm.SinglefileData) -> PotentialLineage:
    """Return the data, settings and code that produced ``potential`` (a ``potential`` or ``potential_yaml``)."""
    calculation = _calculation_of(potential)
    inputs = calculation.inputs
    training_set = inputs.training_set
    test_set = inputs.test_set if 'test_set' in inputs else None
    data_nodes = [training_set] + ([test_set] if test_set is not None else [])

    used: dict[str, dict[str, set[int]]] = defaultdict(lambda: {'train': set(), 'test': set()})
    for split, node in zip(('train', 'test'), data_nodes, strict=False):
        for source in node.get_sources():
            parsed = parse_file_source(source)
            if parsed is not None:
                used[parsed.sha256_prefix][split].add(parsed.index)

    files, dft, sources = {}, {}, {}
    for node in data_nodes:
        for file_node in _ancestors(node, orm.SinglefileData, {'attributes': {'has_key': 'sha256'}}):
            sha256 = file_node.base.attributes.get('sha256')
            splits = used.get(sha256[:SHA_PREFIX], {'train': set(), 'test': set()})
            files[file_node.pk] = {
                'uuid': file_node.uuid,
                'sha256': sha256,
                'filename': file_node.filename,
                'rows': sorted(splits['train'] | splits['test']),
                'train_rows': sorted(splits['train']),
                'test_rows': sorted(splits['test']),
            }
        for calc in _ancestors(node, orm.CalcJobNode):
            if not _plugin_job(calc):
                dft[calc.pk] = calc
        for source_node in _ancestors(node, TrainingSetData):
            sources[source_node.pk] = source_node
    for entry in files.values():
        importer = orm.QueryBuilder().append(orm.Node, filters={'uuid': entry['uuid']}, tag='file')
        importer.append(TrainingSetData, with_ancestors='file', project='attributes.import_info.format')
        formats = {value for value in importer.all(flat=True) if value}
        entry['format'] = formats.pop() if len(formats) == 1 else None
    return PotentialLineage(
        potential=potential,
        calculation=calculation,
        training_set=training_set,
        test_set=test_set,
        settings=inputs.settings.get_dict() if 'settings' in inputs else {},
        code=inputs.code,
        initial_potential=inputs.initial_potential if 'initial_potential' in inputs else None,
        files=list(files.values()),
        dft_calculations=list(dft.values()),
        source_nodes=list(sources.values()),
    )


def find_potentials(
    elements: list[str] | None = None,
    max_rmse_forces: float | None = None,
    max_rmse_energy: float | None = None,
    split: str = 'test',
    source: orm.Node | None = None,
    exact_elements: bool = False,
) -> list[orm.SinglefileData]:
    """Return the ``.yace`` potentials that match, newest first.

    :param elements: the potential covers these elements (all of them; exactly them with ``exact_elements``).
    :param max_rmse_forces: force RMSE below this, in meV/Å (on ``split``: ``'test'`` or ``'train'``).
    :param max_rmse_energy: energy RMSE below this, in meV/atom (on ``split``).
    :param source: the potential descends from this node (a database file, a DFT calculation, a training set...).
    """
    if split not in ('test', 'train'):
        raise ValueError("split must be 'test' or 'train'")
    filters: dict[str, Any] = {}
    if elements:
        filters['attributes.elements'] = {'contains': list(elements)}
    if max_rmse_forces is not None:
        filters[f'attributes.rmse_forces_{split}'] = {'<': max_rmse_forces}
    if max_rmse_energy is not None:
        filters[f'attributes.rmse_energy_{split}'] = {'<': max_rmse_energy}
    query = orm.QueryBuilder()
    if source is not None:
        query.append(orm.Node, filters={'id': source.pk}, tag='source')
        filters['id'] = {'in': _potential_ids()}
        query.append(orm.SinglefileData, with_ancestors='source', filters=filters, tag='potential', project='*')
    else:
        query.append(orm.CalcJobNode, filters={'process_type': CALCULATION_TYPE}, tag='calculation')
        query.append(
            orm.SinglefileData,
            with_incoming='calculation',
            edge_filters={'label': 'potential'},
            filters=filters,
            tag='potential',
            project='*',
        )
    query.order_by({'potential': {'ctime': 'desc'}})
    found = list({node.pk: node for node in query.all(flat=True)}.values())
    if exact_elements and elements:
        found = [node for node in found if sorted(node.base.attributes.get('elements', [])) == sorted(elements)]
    return found


def _potential_ids() -> list[int]:
    query = orm.QueryBuilder()
    query.append(orm.CalcJobNode, filters={'process_type': CALCULATION_TYPE}, tag='calculation')
    query.append(orm.SinglefileData, with_incoming='calculation', edge_filters={'label': 'potential'}, project='id')
    return query.all(flat=True)


def active_set_of(potential_yaml: orm.SinglefileData) -> orm.SinglefileData | None:
    """The newest active set (``.asi``) built from this B-basis YAML (``pace_activeset``), or ``None``."""
    query = orm.QueryBuilder()
    query.append(orm.SinglefileData, filters={'id': potential_yaml.pk}, tag='basis')
    query.append(orm.CalcJobNode, with_incoming='basis', tag='job')
    query.append(orm.SinglefileData, with_incoming='job', filters={'attributes.filename': {'like': '%.asi'}}, tag='asi')
    query.order_by({'asi': {'ctime': 'desc'}})
    return query.first(flat=True)
