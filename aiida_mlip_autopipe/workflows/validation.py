"""``PotentialValidationWorkChain`` (``mlip_autopipe.validation``): the physics of a potential (EOS, elastic
constants, vacancy, phonons, MD) against a reference labeller, every number a node of the graph.

The reference side goes through the loop's labeller interface (:class:`~aiida_mlip_autopipe.labellers.base.Labeller`):
``ase:emt`` (a calcfunction per structure) or Quantum ESPRESSO (a ``PwBaseWorkChain`` per structure). Its labels are
one ``TrainingSetData`` output, ``reference_labels``; given back as the ``reference`` input of the next validation
(of another potential, on the same structures and properties) every structure already labelled there is not labelled
again, so the tenth validation costs no DFT. The potential side is one calcfunction per structure.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import ExitCode, WorkChain, append_, calcfunction
from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain

from aiida_mlip_autopipe.data.sources import parse_node_source
from aiida_mlip_autopipe.data.training_set import TrainingSetData
from aiida_mlip_autopipe.labellers.base import LABELLERS, Labeller
from aiida_mlip_autopipe.labellers.emt import EMT_ELEMENTS

if TYPE_CHECKING:
    from ase import Atoms

__all__ = ('PotentialValidationWorkChain', 'latest_validation', 'potential_elements', 'potential_of')

#: the labeller name of each labelling process type (the check of a ``reference`` input)
LABELLER_OF_PROCESS = {
    'aiida_mlip_autopipe.labellers.emt.label_with_emt': 'ase:emt',
    'aiida.calculations:quantumespresso.pw': 'quantumespresso.pw',
}


def potential_elements(potential: orm.SinglefileData) -> list[str]:
    """The elements of a potential node: its ``elements`` attribute, else the ``elements`` of the file."""
    elements = potential.base.attributes.get('elements', None)
    if elements:
        return list(elements)
    import yaml

    try:
        content = yaml.safe_load(potential.get_content('r'))
    except (yaml.YAMLError, UnicodeDecodeError) as exception:
        raise ValueError(f'{potential.filename}: not an ACE potential ({type(exception).__name__})') from None
    if not isinstance(content, dict) or not content.get('elements'):
        raise ValueError(f'{potential.filename}: not an ACE potential (no elements)')
    return list(content['elements'])


def potential_of(node: orm.Node) -> tuple[orm.SinglefileData, orm.SinglefileData | None]:
    """The potential (``.yace``) a node is or made, and its active set where the process made one: a
    ``SinglefileData`` itself, or the ``potential`` (and ``active_set``) output of the calculation or workflow (the
    training workflow, the loop) that made it. ``ValueError`` in one line for anything else."""
    if isinstance(node, orm.SinglefileData):
        return node, None
    if isinstance(node, orm.ProcessNode):
        outputs = node.base.links.get_outgoing(link_type=(LinkType.CREATE, LinkType.RETURN)).nested()
        potential = outputs.get('potential')
        if isinstance(potential, orm.SinglefileData):
            active_set = outputs.get('active_set')
            return potential, active_set if isinstance(active_set, orm.SinglefileData) else None
        state = node.process_state  # None only for a process node that never ran
        state_text = state.value if state is not None else None
        return_state = 'finished ok' if node.is_finished_ok else f'{state_text}, exit {node.exit_status}'
        raise ValueError(f'{node.process_label}<{node.pk}> ({return_state}) has no potential output')
    raise ValueError(f'{type(node).__name__}<{node.pk}> is neither a potential nor the process that made one')


def latest_validation(potential: orm.SinglefileData) -> orm.WorkflowNode | None:
    """The newest ``PotentialValidationWorkChain`` of ``potential`` that finished ok (``None``: never validated)."""
    query = orm.QueryBuilder()
    query.append(orm.SinglefileData, filters={'id': potential.pk}, tag='potential')
    query.append(
        PotentialValidationWorkChain,
        with_incoming='potential',
        edge_filters={'label': 'potential'},
        filters={'attributes.exit_status': 0},
        tag='validation',
        project='*',
    )
    query.order_by({'validation': {'ctime': 'desc'}}).limit(1)
    return query.first(flat=True)


def reference_labellers(reference: TrainingSetData) -> set[str]:
    """The labellers (``ase:emt``, ``quantumespresso.pw``, or a process type) that made the labels of
    ``reference``, from the processes its sources name."""
    sources = [parse_node_source(source) for source in reference.get_sources()]
    uuids = {uuid for uuid in sources if uuid}
    found: dict[str, str] = {}  # uuid: process_type of each labelling process
    if uuids:
        query = orm.QueryBuilder().append(
            orm.ProcessNode, filters={'uuid': {'in': sorted(uuids)}}, project=['uuid', 'process_type']
        )
        found = dict(query.all())
    labellers = {LABELLER_OF_PROCESS.get(process_type, process_type) for process_type in found.values()}
    if None in sources or set(found) != uuids:  # a label from a file, or from a process not in this database
        labellers.add('unknown')
    return labellers


def _clean(value):
    """JSON-safe: numpy scalars to Python, non-finite floats to ``None``."""
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _array_data(arrays: dict) -> orm.ArrayData:
    data = orm.ArrayData()
    for name, array in arrays.items():
        data.set_array(name, np.asarray(array, dtype=float))
    return data


def _arrays_of(node: orm.ArrayData) -> dict:
    return {name: node.get_array(name) for name in node.get_arraynames()}


@calcfunction
def potential_properties(
    potential: orm.SinglefileData,
    structure: orm.StructureData,
    properties: orm.Dict,
    active_set: orm.SinglefileData | None = None,
) -> dict:
    """The properties of ``structure`` with the potential (its extrapolation grade in MD with ``active_set``)."""
    from aiida_mlip_autopipe.potentials.calculator import get_calculator
    from aiida_mlip_autopipe.validation.compare import potential_side

    calc = get_calculator(potential, active_set)
    results, arrays = potential_side(structure.get_ase(), calc, properties.get_dict())
    if active_set is None:  # pyace reports gamma = 0 without an active set: not a grade
        results.pop('max_gamma', None)
        for name in arrays:
            if name.startswith('md_') and len(arrays[name]):
                arrays[name][:, 5] = np.nan
    return {'results': orm.Dict(_clean(results)), 'arrays': _array_data(arrays)}


@calcfunction
def reference_properties(
    structure: orm.StructureData, properties: orm.Dict, labeller: orm.Str, **labels: TrainingSetData
) -> dict:
    """The properties of ``structure`` from the reference's labelled structures (``labels``: this validation's and
    a reused previous one's); for a model labeller (``ase:emt``) also the relaxed vacancy and MD, computed here."""
    from aiida_mlip_autopipe.validation.compare import reference_side

    pool = [atoms for node in labels.values() for atoms in node.get_atoms()]
    calc = None
    if labeller.value == 'ase:emt':
        from ase.calculators.emt import EMT

        calc = EMT()
    results, arrays = reference_side(structure.get_ase(), properties.get_dict(), pool, calc)
    return {'results': orm.Dict(_clean(results)), 'arrays': _array_data(arrays)}


@calcfunction
def compare_properties(
    label: orm.Str,
    potential_results: orm.Dict,
    reference_results: orm.Dict,
    potential_arrays: orm.ArrayData,
    reference_arrays: orm.ArrayData,
) -> dict:
    """The table of one structure and its plots (PNG): EOS overlay, phonon bands overlay, MD traces."""
    from aiida_mlip_autopipe.validation import plots
    from aiida_mlip_autopipe.validation.compare import table

    potential, reference = potential_results.get_dict(), reference_results.get_dict()
    potential_curves, reference_curves = _arrays_of(potential_arrays), _arrays_of(reference_arrays)
    outputs: dict[str, orm.Data] = {
        'table': orm.Dict(_clean(table(potential, reference, potential_curves, reference_curves)))
    }
    figures = {
        'eos': plots.eos_plot(potential_curves, reference_curves, label.value),
        'phonons': plots.phonon_plot(potential_curves, reference_curves, potential.get('band_path', ''), label.value),
        'md': plots.md_plot(potential_curves, reference_curves, potential.get('temperatures'), label.value),
    }
    for name, png in figures.items():
        if png is not None:
            outputs[name] = orm.SinglefileData(io.BytesIO(png), filename=f'{label.value}_{name}.png')
    return outputs


@calcfunction
def merge_tables(**tables: orm.Dict) -> orm.Dict:
    """``{structure: {quantity: row}}`` of the per-structure tables."""
    return orm.Dict({label: node.get_dict() for label, node in sorted(tables.items())})


#: the most atoms of a cell a property builds (a supercell of a large structure would run for days)
MAX_ATOMS = 2000


def _structure_problem(structures: dict, properties: dict[str, dict]) -> str | None:
    """What makes a structure unfit for the requested properties: no periodicity for the bulk properties (EOS,
    elastic constants, vacancy, phonons of a molecule in a box measure the box), a vacancy ``index`` beyond the
    supercell, a supercell of more than :data:`MAX_ATOMS` atoms."""
    bulk = [name for name in ('eos', 'elastic', 'vacancy', 'phonons') if name in properties]
    for label, structure in structures.items():
        count = len(structure.sites)
        if bulk and not all(structure.pbc):
            return (
                f'structures.{label}: pbc={list(structure.pbc)}; {", ".join(bulk)} need a crystal periodic in all '
                'three directions'
            )
        for name, options in properties.items():
            if 'supercell' not in options:
                continue
            atoms = count * int(np.prod(options['supercell']))
            if atoms > MAX_ATOMS:
                return (
                    f'properties.{name}.supercell={list(options["supercell"])} makes {atoms} atoms of '
                    f'structures.{label} ({count} atoms); at most {MAX_ATOMS}'
                )
            if name == 'vacancy' and atoms < 2:
                return (
                    f'properties.vacancy.supercell={list(options["supercell"])} makes {atoms} atom of '
                    f'structures.{label}: a vacancy needs a supercell of at least 2 atoms (take e.g. [2, 2, 2])'
                )
            if name == 'vacancy' and options['index'] >= atoms:
                return (
                    f'properties.vacancy.index={options["index"]}: the supercell of structures.{label} has '
                    f'{atoms} atoms (0 to {atoms - 1})'
                )
    return None


def validate_inputs(inputs, ctx) -> str | None:
    """The properties and their options, at least one structure, every element in the potential (and known to
    EMT for ``ase:emt``), exactly one labeller, a ``reference`` of the same labeller. Exposed in part (the loop's
    ``validation`` namespace: structures and properties), only the parts given are checked here."""
    from aiida_mlip_autopipe.validation.options import parse_properties

    try:
        properties = parse_properties(inputs['properties'].get_dict()) if 'properties' in inputs else {}
    except ValueError as exception:
        return str(exception)
    structures = inputs.get('structures') or {}
    if not structures:
        return 'structures: give at least one StructureData (the crystals to validate on)'
    problem = _structure_problem(structures, properties)
    if problem:
        return problem
    if ctx is not None and 'potential' not in ctx:  # exposed without potential and labeller: the parent gives them
        return None
    try:
        elements = set(potential_elements(inputs['potential']))
    except ValueError as exception:
        return f'potential: {exception}'
    for label, structure in structures.items():
        missing = sorted(structure.get_symbols_set() - elements)
        if missing:
            return (
                f'structures.{label}: {", ".join(missing)} not in the potential (it has {", ".join(sorted(elements))})'
            )
    labeller = inputs['labeller'].value if 'labeller' in inputs else None
    if (labeller is None) == (not inputs.get('pw')):
        return f'give exactly one labeller: `labeller` ({", ".join(LABELLERS)}) or the `pw` namespace'
    if labeller is not None and labeller not in LABELLERS:
        return f'labeller={labeller!r}: known are {", ".join(LABELLERS)}; for DFT give the `pw` namespace'
    if labeller == 'ase:emt':
        for label, structure in structures.items():
            unknown = sorted(structure.get_symbols_set() - EMT_ELEMENTS)
            if unknown:
                return f'structures.{label}: EMT has no parameters for {", ".join(unknown)}'
    if inputs.get('pw'):
        if 'pseudo_family' not in inputs:
            return 'the `pw` labeller takes its pseudopotentials from `pseudo_family` (an aiida-pseudo family label)'
        parameters = inputs['pw'].get('pw', {}).get('parameters')
        control = parameters.get_dict().get('CONTROL', {}) if parameters is not None else {}
        if 'elastic' in properties and not control.get('tstress', False):
            return 'properties.elastic needs the stress: set pw.pw.parameters CONTROL.tstress = True'
    if 'reference' in inputs:
        expected = labeller or 'quantumespresso.pw'
        found = reference_labellers(inputs['reference'])
        if found != {expected}:
            return f"reference: labelled by {', '.join(sorted(found))}, not by this validation's {expected}"
    return None


class PotentialValidationWorkChain(WorkChain):
    """Compute EOS, elastic constants, vacancy formation, phonons and MD stability with a potential and with a
    reference labeller on each structure; output the comparison table, the curves and plots."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('potential', valid_type=orm.SinglefileData, help='The potential (.yace).')
        spec.input(
            'active_set',
            valid_type=orm.SinglefileData,
            required=False,
            help='Its active set (.asi): the extrapolation grade along MD.',
        )
        spec.input_namespace(
            'structures', valid_type=orm.StructureData, dynamic=True, help='The crystals to validate on, by label.'
        )
        spec.input(
            'properties',
            valid_type=orm.Dict,
            help='Any of eos, elastic, vacancy, phonons, md, each with its options (a dict, or true for defaults).',
        )
        spec.input('labeller', valid_type=orm.Str, required=False, help="The reference: 'ase:emt' (not DFT).")
        spec.expose_inputs(
            PwBaseWorkChain,
            namespace='pw',
            exclude=('pw.structure', 'pw.pseudos'),
            namespace_options={
                'required': False,
                'populate_defaults': False,
                'help': 'The reference from Quantum ESPRESSO: the inputs of PwBaseWorkChain (code, parameters, '
                'kpoints or kpoints_distance, options; pseudopotentials from `pseudo_family`), one per structure.',
            },
        )
        spec.input('pseudo_family', valid_type=orm.Str, required=False, help='The aiida-pseudo family of `pw`.')
        spec.input(
            'reference',
            valid_type=TrainingSetData,
            required=False,
            help='The reference_labels of a previous validation with the same labeller: structures found there are '
            'not labelled again.',
        )
        spec.inputs.validator = validate_inputs
        spec.outline(cls.setup, cls.label, cls.collect, cls.compute, cls.finalize)
        spec.output('properties', valid_type=orm.Dict, help='{structure: {quantity: {potential, reference, ...}}}.')
        spec.output(
            'reference_labels',
            valid_type=TrainingSetData,
            required=False,
            help='Every reference label (for `reference`); none when only MD was asked.',
        )
        spec.output_namespace('arrays', valid_type=orm.ArrayData, dynamic=True, help='<structure>_potential/reference.')
        spec.output_namespace('plots', valid_type=orm.SinglefileData, dynamic=True, help='<structure>_eos/phonons/md.')
        spec.exit_code(460, 'ERROR_LABELLING_FAILED', message='{failed} of {count} reference labels failed: {cause}')
        spec.exit_code(440, 'ERROR_COLLECTION_FAILED', message='the reference labels could not be collected: {cause}')
        spec.exit_code(480, 'ERROR_POTENTIAL_FAILED', message='the potential side of {structure} failed: {cause}')
        spec.exit_code(481, 'ERROR_REFERENCE_FAILED', message='the reference side of {structure} failed: {cause}')

    def _labeller(self) -> Labeller:
        if 'labeller' in self.inputs:
            from aiida_mlip_autopipe.labellers.emt import EMTLabeller

            return EMTLabeller()
        from aiida_mlip_autopipe.labellers.pw import PwLabeller

        reference = []
        if 'reference' in self.inputs:
            uuids = [uuid for uuid in map(parse_node_source, self.inputs.reference.get_sources()) if uuid]
            query = orm.QueryBuilder().append(orm.CalcJobNode, filters={'uuid': {'in': uuids}}, project='id')
            reference = query.all(flat=True)
        inputs = self.exposed_inputs(PwBaseWorkChain, namespace='pw')
        return PwLabeller(inputs, self.inputs.pseudo_family.value, reference=reference)

    def setup(self):
        """The options filled in; the single points the reference must label and does not have yet."""
        from aiida_mlip_autopipe.validation.common import find_labelled
        from aiida_mlip_autopipe.validation.compare import reference_structures
        from aiida_mlip_autopipe.validation.options import parse_properties

        self.ctx.properties = parse_properties(self.inputs.properties.get_dict())
        pool = self.inputs.reference.get_atoms() if 'reference' in self.inputs else []
        missing: list[Atoms] = []
        for label, structure in sorted(self.inputs.structures.items()):
            for name, wanted in reference_structures(structure.get_ase(), self.ctx.properties).items():
                for index, atoms in enumerate(wanted):
                    if find_labelled(atoms, pool) is None and find_labelled(atoms, missing) is None:
                        atoms.info['link'] = f'reference_{label}_{name}_{index:03d}'
                        missing.append(atoms)
        self.ctx.missing = missing
        if 'reference' in self.inputs:
            self.report(f'{len(missing)} reference labels to compute, the rest reused from `reference`')
        else:
            self.report(f'{len(missing)} reference labels to compute (no `reference` given to reuse)')

    def label(self):
        """One labelling process per missing single point (submitted ones run concurrently)."""
        labeller = self._labeller()
        self.ctx.finished_labels = []
        for atoms in self.ctx.missing:
            node = labeller.launch(self, orm.StructureData(ase=atoms), atoms.info['link'])
            if node.is_terminated:
                self.ctx.finished_labels.append(node)
            else:
                self.to_context(labels=append_(node))

    def collect(self):
        """All labels must succeed; this run's labels in one ``TrainingSetData``, merged with the reused ones."""
        from aiida_mlip_autopipe.collection.pw import merge_collected

        nodes = self.ctx.finished_labels + list(self.ctx.get('labels', []))
        failed = [node for node in nodes if not node.is_finished_ok]
        if failed:
            first = failed[0]
            cause = f'e.g. {first.process_label}<{first.pk}> [{first.exit_status}] {first.exit_message}'
            return self.exit_codes.ERROR_LABELLING_FAILED.format(failed=len(failed), count=len(nodes), cause=cause)
        self.ctx.labels_nodes = {}
        if 'reference' in self.inputs:
            self.ctx.labels_nodes['previous'] = self.inputs.reference
        if nodes:
            try:
                self.ctx.labels_nodes['new'] = self._labeller().collect(nodes)
            except Exception as exception:  # mixed DFT settings, a label that cannot be stored
                return self.exit_codes.ERROR_COLLECTION_FAILED.format(cause=str(exception))
        if len(self.ctx.labels_nodes) == 2:
            merged = merge_collected(part_0=self.ctx.labels_nodes['previous'], part_1=self.ctx.labels_nodes['new'])
            self.out('reference_labels', merged)
        elif self.ctx.labels_nodes:  # nothing at all for MD alone
            self.out('reference_labels', next(iter(self.ctx.labels_nodes.values())))
        return None

    def compute(self):
        """Per structure: the potential side, the reference side, their table and plots."""
        properties = orm.Dict(self.ctx.properties)
        labeller = orm.Str(self.inputs.labeller.value if 'labeller' in self.inputs else 'quantumespresso.pw')
        tables = {}
        # the type: ignores below: aiida-core's ParamSpec for process functions leaves out the ``metadata`` input
        # every one of them takes (for reference_properties, mypy takes it for one of the ``**labels``)
        for label, structure in sorted(self.inputs.structures.items()):
            extra = {'active_set': self.inputs.active_set} if 'active_set' in self.inputs else {}
            try:
                potential = potential_properties(  # type: ignore[call-arg]
                    self.inputs.potential,
                    structure,
                    properties,
                    **extra,
                    metadata={'call_link_label': f'potential_{label}'},
                )
            except Exception as exception:
                return self.exit_codes.ERROR_POTENTIAL_FAILED.format(structure=label, cause=str(exception))
            try:
                reference = reference_properties(
                    structure,
                    properties,
                    labeller,
                    **self.ctx.labels_nodes,
                    metadata={'call_link_label': f'reference_{label}'},  # type: ignore[arg-type]
                )
            except Exception as exception:
                return self.exit_codes.ERROR_REFERENCE_FAILED.format(structure=label, cause=str(exception))
            compared = compare_properties(  # type: ignore[call-arg]
                orm.Str(label),
                potential['results'],
                reference['results'],
                potential['arrays'],
                reference['arrays'],
                metadata={'call_link_label': f'compare_{label}'},
            )
            tables[label] = compared['table']
            self.out(f'arrays.{label}_potential', potential['arrays'])
            self.out(f'arrays.{label}_reference', reference['arrays'])
            for name in ('eos', 'phonons', 'md'):
                if name in compared:
                    self.out(f'plots.{label}_{name}', compared[name])
        self.ctx.tables = tables
        return None

    def finalize(self):
        """The table of every structure."""
        self.out('properties', merge_tables(**self.ctx.tables))
        return ExitCode(0)
