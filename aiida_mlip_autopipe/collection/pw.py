"""Collect labelled structures from DFT results already in the AiiDA database, with each source as an input link.

* :func:`collect_from_pw`: finished aiida-quantumespresso ``PwCalculation`` nodes, or ``PwBaseWorkChain`` nodes
  (their last successful ``PwCalculation``). Energy (eV), forces (eV/Å) and stress from ``output_trajectory`` (the
  last step, or every step of a relax / MD). Only the trajectories (and input structures) become inputs of the
  collecting calcfunction: they compare by UUID, so collection stays linear in the number of calculations (a
  ``Dict`` compares by content, which made it quadratic). Failed calculations are refused (or skipped on request)
  and calculations whose energy-deciding settings differ are named (or accepted on request).
  QE's stress is in GPa with the sign of QE's printed pressure (positive = compressed); it is converted to
  eV/Å³ with ASE's sign (``stress_ase = -stress_qe * ase.units.GPa``), as ASE's own QE reader does.
* :func:`collect_structures`: the generic form any DFT plugin maps onto: a ``StructureData``, the total energy
  (``Float``, eV), the forces (``ArrayData`` array ``forces``, eV/Å) and optionally the stress (``ArrayData``
  array ``stress``, 3x3 or Voigt, eV/Å³, ASE sign).

Each structure's ``source`` is ``aiida:<uuid>`` of the DFT calculation that created its energy (or of the
structure, when the energy has no creator).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_mlip_autopipe.data.sources import node_source
from aiida_mlip_autopipe.data.training_set import TrainingSetBuilder, TrainingSetData, TrainingSetError

__all__ = (
    'CollectionError',
    'collect_from_pw',
    'collect_pw_results',
    'collect_structure_results',
    'collect_structures',
    'describe_nodes',
    'last_pw_calculation',
    'non_pw_processes',
)

PW_PROCESS_TYPE = 'aiida.calculations:quantumespresso.pw'
QE_WORKFLOW_PREFIX = 'aiida.workflows:quantumespresso.'
#: Calculations per collecting calcfunction: aiida-core checks each new input link against the ones before it, so
#: one calcfunction with N inputs costs O(N^2); batches of this size, then one merge, keep collection linear.
BATCH = 50


def _pk(node: orm.Node) -> int:
    """The pk of a stored node (aiida-core types ``pk`` as ``int | None``: ``None`` only before a node is stored)."""
    return cast(int, node.pk)


def _source_of(node: orm.Data, fallback: orm.Node) -> str:
    creator = node.creator
    return node_source((creator or fallback).uuid)


def _numbers(symbols: Iterable[str]) -> np.ndarray:
    from ase.data import atomic_numbers

    return np.asarray([atomic_numbers[symbol] for symbol in symbols], dtype=np.int32)


def _groups(sources: Mapping[str, orm.Data]) -> dict[str, dict[str, orm.Data]]:
    """Split flat ``<key>_<field>`` inputs into ``{key: {field: node}}``."""
    groups: dict[str, dict[str, orm.Data]] = {}
    for label, node in sources.items():
        key, _, field = label.rpartition('_')
        groups.setdefault(key, {})[field] = node
    return dict(sorted(groups.items(), key=lambda item: int(item[0][1:])))


def read_arrays(nodes: Sequence[orm.ArrayData]) -> list[dict[str, np.ndarray]]:
    """Read every array of many stored ``ArrayData`` nodes in one pass over the repository (reading them one by one
    opens the object store for each array)."""
    from aiida.manage import get_manager

    wanted: dict[str, list[tuple[int, str]]] = {}
    result: list[dict[str, np.ndarray]] = [{} for _ in nodes]
    for index, node in enumerate(nodes):
        for name in node.get_arraynames():
            key = node.base.repository.get_object(f'{name}.npy').key
            assert key is not None  # a file's key (only a directory has none)
            wanted.setdefault(key, []).append((index, name))
    repository = get_manager().get_profile_storage().get_repository()
    for key, stream in repository.iter_object_streams(list(wanted)):
        array = np.load(io.BytesIO(stream.read()), allow_pickle=False)
        for index, name in wanted[key]:
            result[index][name] = array
    return result


def _creator_uuids(nodes: Sequence[orm.Data]) -> dict[int, str]:
    """The UUID of the calculation that created each node, in bulk (``node.creator`` is one query per node)."""
    from aiida.common.links import LinkType

    result = {}
    for chunk in _chunks([node.pk for node in nodes]):
        query = orm.QueryBuilder().append(orm.Data, filters={'id': {'in': chunk}}, project='id', tag='data')
        query.append(
            orm.CalculationNode, with_outgoing='data', edge_filters={'type': LinkType.CREATE.value}, project='uuid'
        )
        result.update(dict(query.all()))
    return result


@calcfunction
def merge_collected(**parts: TrainingSetData) -> TrainingSetData:
    """Concatenate the batches of one collection (in label order) into one ``TrainingSetData``."""
    return TrainingSetData.concatenate([parts[label] for label in sorted(parts)])


@calcfunction
def collect_pw_results(frames: orm.Str, **sources: orm.Data) -> TrainingSetData:
    """Build a ``TrainingSetData`` from PW outputs: per calculation ``s<i>_trajectory`` (its ``energy`` array, or
    ``s<i>_parameters`` for a trajectory without one) and, for a trajectory without ``pbc``, ``s<i>_structure``.

    ``frames`` is ``'last'`` (the final step) or ``'all'`` (every ionic step of a relax / MD trajectory).
    """
    from ase.units import GPa

    builder = TrainingSetBuilder()
    groups = _groups(sources)
    trajectories = [cast(orm.TrajectoryData, nodes['trajectory']) for nodes in groups.values()]
    creators = _creator_uuids(trajectories)
    for (key, nodes), arrays in zip(groups.items(), read_arrays(trajectories), strict=True):
        trajectory = nodes['trajectory']
        uuid = creators.get(_pk(trajectory), trajectory.uuid)
        source = node_source(uuid)
        if 'energy' in arrays:
            energies = np.atleast_1d(arrays['energy'])
        elif 'parameters' in nodes:
            parameters = cast(orm.Dict, nodes['parameters'])
            units = parameters.get('energy_units', 'eV')
            if units != 'eV':
                raise TrainingSetError(f'{key} ({source}): energy in {units!r}, expected eV')
            energies = np.asarray([parameters.get('energy')], dtype=float)
        else:
            raise TrainingSetError(f'{key} ({source}): the trajectory has no energy array')
        positions, cells = arrays['positions'], arrays['cells']
        forces, stress = arrays.get('forces'), arrays.get('stress')
        count = len(positions)
        steps = range(count) if frames.value == 'all' else [count - 1]
        if frames.value == 'all' and len(energies) != count:
            raise TrainingSetError(f'{key} ({source}): {len(energies)} energies for {count} frames')
        pbc = nodes['structure'].pbc if 'structure' in nodes else (trajectory.pbc or (True, True, True))
        for step in steps:
            problem = builder.add(
                _numbers(trajectory.symbols),
                positions[step],
                cells[step],
                pbc,
                energies[step] if frames.value == 'all' else energies[-1],
                forces[step] if forces is not None else None,
                -np.asarray(stress[step]) * GPa if stress is not None else None,
                source=source if frames.value == 'last' else node_source(uuid, step),
            )
            if problem:
                raise TrainingSetError(f'{key} ({source}, frame {step}): {problem}')
    return TrainingSetData(arrays=builder.arrays())


@calcfunction
def collect_structure_results(**sources: orm.Data) -> TrainingSetData:
    """Build a ``TrainingSetData`` from ``s<i>_structure``, ``s<i>_energy`` (eV), ``s<i>_forces`` (eV/Å) and
    optionally ``s<i>_stress`` (eV/Å³, ASE sign)."""
    builder = TrainingSetBuilder()
    for key, nodes in _groups(sources).items():
        structure = nodes['structure']
        atoms = structure.get_ase()
        forces = nodes['forces'].get_array('forces') if 'forces' in nodes else None
        stress = nodes['stress'].get_array('stress') if 'stress' in nodes else None
        problem = builder.add(
            atoms.numbers,
            atoms.positions,
            atoms.cell[:],
            atoms.pbc,
            nodes['energy'].value,
            forces,
            stress,
            source=_source_of(nodes['energy'], structure),
        )
        if problem:
            raise TrainingSetError(f'{key} ({_source_of(nodes["energy"], structure)}): {problem}')
    return TrainingSetData(arrays=builder.arrays())


def last_pw_calculation(node: orm.ProcessNode) -> orm.CalcJobNode | None:
    """The node itself for a ``PwCalculation``; for a workflow (``PwBaseWorkChain``), its last successful
    ``PwCalculation``; ``None`` when there is none (failed)."""
    return _last_successful_pw([node]).get(_pk(node))


def _chunks(values: list, size: int = 500):
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _last_successful_pw(nodes: list[orm.ProcessNode]) -> dict[int, orm.CalcJobNode]:
    """Map each node's pk to its last successful ``PwCalculation`` (itself, or a workflow's descendant), in bulk."""
    ok = {'attributes.process_state': 'finished', 'attributes.exit_status': 0}
    result: dict[int, orm.CalcJobNode] = {}
    calculations = [node.pk for node in nodes if isinstance(node, orm.CalcJobNode)]
    for chunk in _chunks(calculations):
        query = orm.QueryBuilder().append(orm.CalcJobNode, filters={'id': {'in': chunk}, **ok}, project='*')
        result.update({calc.pk: calc for calc in query.all(flat=True)})
    workflows = [node for node in nodes if not isinstance(node, orm.CalcJobNode)]
    for chunk in _chunks([node.pk for node in workflows]):
        query = orm.QueryBuilder().append(orm.WorkflowNode, filters={'id': {'in': chunk}}, project='id', tag='wf')
        query.append(
            orm.CalcJobNode,
            with_incoming='wf',  # CALL_CALC: the PwCalculations a PwBaseWorkChain launched
            filters={'process_type': PW_PROCESS_TYPE, **ok},
            project=['*', 'ctime'],
        )
        for workflow, calc, ctime in query.all():
            if workflow not in result or ctime > result[workflow].ctime:
                result[workflow] = calc
    for workflow in workflows:  # deeper nesting (e.g. a relax workflow around PwBaseWorkChain): walk it
        if workflow.pk not in result:
            children = [
                child
                for child in workflow.called_descendants
                if isinstance(child, orm.CalcJobNode) and child.process_type == PW_PROCESS_TYPE and child.is_finished_ok
            ]
            if children:
                result[_pk(workflow)] = max(children, key=lambda child: child.ctime)
    return result


def non_pw_processes(nodes: list[orm.ProcessNode]) -> list[orm.ProcessNode]:
    """The nodes that are not DFT results this module collects: calculations other than ``PwCalculation``,
    workflows that are not aiida-quantumespresso's and never ran one (at any depth), other nodes; in bulk."""
    foreign: list[orm.ProcessNode] = [
        node for node in nodes if isinstance(node, orm.CalcJobNode) and node.process_type != PW_PROCESS_TYPE
    ]
    # aiida-quantumespresso's workflows count even without a PW run (a failed PwBaseWorkChain is a failed PW result)
    workflows = [
        node
        for node in nodes
        if isinstance(node, orm.WorkflowNode) and not (node.process_type or '').startswith(QE_WORKFLOW_PREFIX)
    ]
    with_pw: set[int] = set()
    for chunk in _chunks([node.pk for node in workflows]):
        query = orm.QueryBuilder().append(orm.WorkflowNode, filters={'id': {'in': chunk}}, project='id', tag='wf')
        query.append(orm.CalcJobNode, with_incoming='wf', filters={'process_type': PW_PROCESS_TYPE})  # CALL_CALC
        with_pw.update(query.distinct().all(flat=True))
    for workflow in workflows:  # deeper nesting: walk it
        if workflow.pk not in with_pw and any(
            child.process_type == PW_PROCESS_TYPE for child in workflow.called_descendants
        ):
            with_pw.add(_pk(workflow))
    others = [node for node in nodes if not isinstance(node, orm.CalcJobNode | orm.WorkflowNode)]
    foreign += [node for node in workflows if node.pk not in with_pw]
    return sorted(foreign + others, key=_pk)


def describe_nodes(nodes: Sequence[orm.Node], limit: int = 10) -> str:
    """``ArithmeticAddCalculation<12>, Int<13>``: what each node is, for a message."""
    names = [f'{getattr(node, "process_label", None) or type(node).__name__}<{node.pk}>' for node in nodes]
    return ', '.join(names[:limit]) + (f' and {len(names) - limit} more' if len(names) > limit else '')


def _links(calculations: list[orm.CalcJobNode], direction: str, labels: list[str]) -> dict[int, dict[str, orm.Data]]:
    """The input (``direction='in'``) or output data of many calculations at once: ``{pk: {label: node}}``."""
    result: dict[int, dict[str, orm.Data]] = {_pk(calc): {} for calc in calculations}
    relation = 'with_outgoing' if direction == 'in' else 'with_incoming'
    relation_filter: dict[str, Any] = {relation: 'calc'}
    label_filter = {'or': [{'label': label} if '%' not in label else {'label': {'like': label}} for label in labels]}
    for chunk in _chunks([calc.pk for calc in calculations]):
        query = orm.QueryBuilder().append(orm.CalcJobNode, filters={'id': {'in': chunk}}, project='id', tag='calc')
        query.append(
            orm.Data, **relation_filter, edge_filters=label_filter, edge_project='label', project='*', tag='data'
        )
        for row in query.iterdict():
            result[row['calc']['id']][row['calc--data']['label']] = row['data']['*']
    return result


def pw_settings_fingerprint(inputs: dict[str, orm.Data]) -> dict:
    """The inputs of a PW calculation that decide its absolute energies (functional, pseudopotentials, cutoffs,
    smearing, spin) and its k-point spacing (1/Å, the largest over the three directions)."""
    parameters = inputs['parameters'].get_dict() if 'parameters' in inputs else {}
    system = {key.lower(): value for key, value in (parameters.get('SYSTEM') or {}).items()}
    pseudos = {
        label.removeprefix('pseudos__'): node.base.attributes.get('md5', node.uuid)
        for label, node in inputs.items()
        if label.startswith('pseudos__')
    }
    fingerprint = {
        'input_dft': system.get('input_dft'),
        'pseudos': dict(sorted(pseudos.items())),
        'ecutwfc': system.get('ecutwfc'),
        'ecutrho': system.get('ecutrho'),
        'occupations': system.get('occupations'),
        'smearing': system.get('smearing'),
        'degauss': system.get('degauss'),
        'nspin': system.get('nspin', 1),
    }
    spacing = None
    if 'kpoints' in inputs and 'structure' in inputs:
        try:
            mesh, _ = inputs['kpoints'].get_kpoints_mesh()
        except AttributeError:  # an explicit k-point list
            mesh = None
        if mesh is not None:
            lengths = np.linalg.norm(np.asarray(inputs['structure'].cell), axis=1)
            spacing = float(max(1.0 / (m * length) for m, length in zip(mesh, lengths, strict=True)))
    return {'settings': fingerprint, 'kpoint_spacing': spacing}


def settings_mismatches(fingerprints: dict[int, dict], spacing_tolerance: float = 1.5) -> list[str]:
    """Name the calculations (by pk) whose energy-deciding settings differ from the majority's, or whose k-point
    spacing lies more than ``spacing_tolerance`` times away from the median."""
    if not fingerprints:
        return []
    keys = {pk: repr(sorted(value['settings'].items())) for pk, value in fingerprints.items()}
    majority = max(set(keys.values()), key=list(keys.values()).count)
    reference = next(value['settings'] for pk, value in fingerprints.items() if keys[pk] == majority)
    problems = []
    for pk, value in fingerprints.items():
        differing = {name: item for name, item in value['settings'].items() if item != reference.get(name)}
        if differing:
            problems.append(
                f'<{pk}> {", ".join(f"{k}={v!r} (others: {reference.get(k)!r})" for k, v in differing.items())}'
            )
    spacings = {pk: value['kpoint_spacing'] for pk, value in fingerprints.items() if value['kpoint_spacing']}
    if spacings:
        median = float(np.median(list(spacings.values())))
        for pk, spacing in spacings.items():
            if spacing > median * spacing_tolerance or spacing < median / spacing_tolerance:
                problems.append(f'<{pk}> k-point spacing {spacing:.3f} 1/Å (median {median:.3f} 1/Å)')
    return problems


class CollectionError(TrainingSetError):
    """DFT results cannot be collected as asked (failed calculations, mixed settings)."""

    def __init__(self, message: str, kind: str, pks: list[int]):
        super().__init__(message)
        self.kind, self.pks = kind, pks


def collect_from_pw(
    nodes: Iterable[orm.ProcessNode],
    *,
    skip_failed: bool = False,
    frames: str = 'last',
    allow_mixed_settings: bool = False,
    progress: Callable[[int], None] | None = None,
    reference: Iterable[orm.CalcJobNode] = (),
) -> TrainingSetData:
    """Collect finished ``PwCalculation`` nodes, or ``PwBaseWorkChain`` nodes (their last successful
    ``PwCalculation``), into one ``TrainingSetData`` whose inputs are their output trajectories.

    :param skip_failed: skip calculations / workflows without a successful PW run (counted in the result's
        ``collection`` attribute) instead of refusing them.
    :param frames: ``'last'`` (default) or ``'all'``: every ionic step of a relax or MD trajectory.
    :param allow_mixed_settings: accept calculations whose energy-deciding settings differ (functional,
        pseudopotentials, cutoffs, smearing, k-point spacing); by default they are refused and named.
    :param progress: called with the number of calculations collected so far (a progress bar).
    :param reference: PW calculations (not collected) whose energy-deciding settings the collected ones must
        share, e.g. those of data collected before (the active-learning loop's first fit).
    """
    if frames not in ('last', 'all'):
        raise ValueError(f"frames={frames!r}: use 'last' or 'all'")
    nodes = list(nodes)
    foreign = non_pw_processes(nodes)
    if foreign:
        raise CollectionError(
            f'not PwCalculation / PwBaseWorkChain results: {describe_nodes(foreign)}',
            'unsupported',
            [_pk(node) for node in foreign],
        )
    chosen = _last_successful_pw(nodes)
    failed = [_pk(node) for node in nodes if node.pk not in chosen]
    calculations = [chosen[_pk(node)] for node in nodes if node.pk in chosen]
    outputs = _links(calculations, 'out', ['output_trajectory', 'output_parameters'])
    inputs = _links(calculations, 'in', ['structure', 'parameters', 'kpoints', 'pseudos__%'])
    entries: list[dict[str, orm.Data]] = []
    fingerprints: dict[int, dict] = {}
    for calculation in calculations:
        pk = _pk(calculation)
        produced = outputs[pk]
        if 'output_trajectory' not in produced:
            raise CollectionError(f'{calculation.process_label}<{pk}> has no output_trajectory', 'failed', [pk])
        trajectory = produced['output_trajectory']
        entry = {'trajectory': trajectory}
        if 'energy' not in trajectory.get_arraynames() and 'output_parameters' in produced:
            entry['parameters'] = produced['output_parameters']
        if trajectory.pbc is None and 'structure' in inputs[pk]:
            entry['structure'] = inputs[pk]['structure']
        entries.append(entry)
        fingerprints[pk] = pw_settings_fingerprint(inputs[pk])
    count = len(entries)
    # loaded ORM objects are expired on every commit of the calcfunctions below: keep only the trajectories alive
    del calculations, chosen, outputs, inputs
    if failed and not skip_failed:
        raise CollectionError(
            f'{len(failed)} DFT calculation(s) did not finish successfully: {_pk_list(failed)}; skip them explicitly '
            'to train without them',
            'failed',
            failed,
        )
    reference = [node for node in reference if node.pk not in fingerprints]
    for pk, linked in _links(reference, 'in', ['structure', 'parameters', 'kpoints', 'pseudos__%']).items():
        fingerprints[pk] = pw_settings_fingerprint(linked)
    mismatches = settings_mismatches(fingerprints)
    if mismatches and not allow_mixed_settings:
        raise CollectionError(
            'the DFT calculations do not share the settings that decide absolute energies: '
            + '; '.join(mismatches[:10])
            + (f' (and {len(mismatches) - 10} more)' if len(mismatches) > 10 else ''),
            'mixed_settings',
            [],
        )
    if not entries:
        raise CollectionError('no successful DFT calculations to collect', 'failed', failed)
    batches = [
        {
            f's{index}_{field}': node
            for index, entry in enumerate(entries[start : start + BATCH])
            for field, node in entry.items()
        }
        for start in range(0, count, BATCH)
    ]
    parts = []
    for batch in batches:
        parts.append(collect_pw_results(frames=orm.Str(frames), **batch))
        if progress is not None:
            progress(min(count, len(parts) * BATCH))
    result = parts[0] if len(parts) == 1 else merge_collected(**{f'part_{i:05d}': p for i, p in enumerate(parts)})
    result.base.extras.set(
        'collection',
        {'calculations': count, 'skipped_failed': failed, 'frames': frames, 'mixed_settings': mismatches},
    )
    return result


def _pk_list(pks: list[int], limit: int = 20) -> str:
    shown = ', '.join(f'<{pk}>' for pk in pks[:limit])
    return shown + (f' and {len(pks) - limit} more' if len(pks) > limit else '')


def collect_structures(entries: Iterable[Mapping[str, orm.Data]]) -> TrainingSetData:
    """Collect ``{'structure', 'energy', 'forces'[, 'stress']}`` node mappings into one ``TrainingSetData``."""
    sources: dict[str, orm.Data] = {}
    for index, entry in enumerate(entries):
        unknown = set(entry) - {'structure', 'energy', 'forces', 'stress'}
        if unknown or not {'structure', 'energy'} <= set(entry):
            raise TrainingSetError(f'entry {index}: give structure, energy, forces and optionally stress')
        for field, node in entry.items():
            sources[f's{index}_{field}'] = node
    if not sources:
        raise TrainingSetError('no structures to collect')
    return collect_structure_results(**sources)
