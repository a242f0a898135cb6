"""``PacemakerTrainingWorkChain``: query the training data in the database, check it, split it, train.

Outline: resolve the data source once (a group, QueryBuilder filters, or explicit nodes) → refuse too little
data or structures without forces (named exit codes, before anything is created) → merge and split the resolved
nodes in one calcfunction (so exactly which nodes were used is recorded as its input links) → optionally subtract
the ZBL baseline (delta learning) → train with ``PacemakerBaseWorkChain`` → optionally build the active set
(``pace_activeset`` through aiida-shell) → store the plots → expose the potential, metrics and the data sets.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction, if_, while_
from aiida.engine.processes.calcjobs.calcjob import validate_calc_job
from aiida.engine.processes.ports import PortNamespace

from aiida_mlip_autopipe.baseline.delta import subtract_zbl_baseline
from aiida_mlip_autopipe.baseline.zbl import ZBLBaseline, second_zbl_core
from aiida_mlip_autopipe.calculations.pacemaker import (
    PacemakerCalculation,
    settings_problem,
    threads_unknown,
    validate_settings,
)
from aiida_mlip_autopipe.codes import sibling_code
from aiida_mlip_autopipe.collection.pw import CollectionError, collect_from_pw, describe_nodes, non_pw_processes
from aiida_mlip_autopipe.data.training_set import TrainingSetData
from aiida_mlip_autopipe.potentials.plots import render_plots
from aiida_mlip_autopipe.workflows.base import PacemakerBaseWorkChain, extract_retrieved_file, failure_of
from aiida_mlip_autopipe.workflows.defaults import DEFAULT_MIN_STRUCTURES, DEFAULT_SPLIT_SEED, DEFAULT_TEST_FRACTION
from aiida_mlip_autopipe.workflows.protocols import ProtocolMixin

__all__ = (
    'PacemakerTrainingWorkChain',
    'assemble_training_data',
    'merge_plan',
    'query_filters',
    'split_indices',
)

SOURCES = ('group', 'filters', 'training_sets')


def test_count(count: int, test_fraction: float) -> int:
    """How many of ``count`` structures the split holds out (at least one when ``test_fraction > 0``)."""
    count_test = round(test_fraction * count)
    if test_fraction > 0 and count_test == 0 and count > 1:
        count_test = 1
    return count_test


def split_problem(count: int, test_fraction: float) -> str | None:
    """Why splitting ``count`` structures with ``test_fraction`` leaves no training structure, or ``None``."""
    held_out = test_count(count, test_fraction)
    if count and held_out < count:
        return None
    return (
        f'test_fraction={test_fraction} leaves no training structure: {held_out} of the {count} distinct '
        'structure(s) would be held out for testing; lower test_fraction or give more data'
    )


def split_indices(count: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return reproducible ``(train, test)`` index arrays (sorted) for ``count`` structures."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f'test_fraction={test_fraction} must lie in [0, 1)')
    problem = split_problem(count, test_fraction)
    if problem:
        raise ValueError(problem)
    count_test = test_count(count, test_fraction)
    permutation = np.random.default_rng(seed).permutation(count)
    return np.sort(permutation[count_test:]), np.sort(permutation[:count_test])


def merge_plan(sets: list[TrainingSetData], test_set: TrainingSetData | None = None) -> tuple[list[int], dict]:
    """Which structures of ``sets`` (concatenated in order) to train on: each distinct structure (geometry and
    labels, :meth:`~aiida_mlip_autopipe.data.training_set.TrainingSetData.structure_keys`) once, at its first
    occurrence, and none that a fixed ``test_set`` holds; with the counts (``merge_info``) recorded on the merged
    training set."""
    held_out = set(test_set.structure_keys()) if test_set is not None else set()
    seen: set[bytes] = set()
    keep, duplicates, in_test_set, offset = [], 0, 0, 0
    for node in sets:
        for index, key in enumerate(node.structure_keys()):
            if key in seen:
                duplicates += 1
            elif key in held_out:
                in_test_set += 1
                seen.add(key)
            else:
                seen.add(key)
                keep.append(offset + index)
        offset += len(node)
    info = {
        'structures_given': offset,
        'duplicates_dropped': duplicates,
        'in_test_set_dropped': in_test_set,
        'structures': len(keep),
    }
    return keep, info


def merge_summary(info: dict) -> str:
    """``merged 12 structures: 2 duplicate(s) dropped, ...`` for reports and messages."""
    text = f'merged {info["structures_given"]} structures: {info["duplicates_dropped"]} duplicate(s) dropped'
    if info['in_test_set_dropped']:
        text += f', {info["in_test_set_dropped"]} also in the fixed test_set dropped'
    return f'{text}; {info["structures"]} distinct structures to split'


@calcfunction
def assemble_training_data(
    test_fraction: orm.Float, seed: orm.Int, fixed_test_set: TrainingSetData | None = None, **training_sets
) -> dict:
    """Merge ``training_sets`` (in label order) with every distinct structure once, leave out those of a
    ``fixed_test_set``, and split the rest reproducibly into training and test sets. The training set records the
    counts in its ``merge_info`` attribute."""
    sets = [training_sets[label] for label in sorted(training_sets)]
    keep, info = merge_plan(sets, fixed_test_set)
    merged = TrainingSetData.concatenate(sets)
    if len(keep) != len(merged):
        merged = merged.select(keep)
    train, test = split_indices(len(merged), test_fraction.value, seed.value)
    result = {'training_set': merged.select(train)}
    result['training_set'].base.attributes.set('merge_info', info)
    if len(test):
        result['test_set'] = merged.select(test)
    return result


QB_OPERATORS = frozenset(
    {
        '==',
        '!==',
        'in',
        '!in',
        '<',
        '<=',
        '>',
        '>=',
        'like',
        '!like',
        'ilike',
        '!ilike',
        'contains',
        '!contains',
        'has_key',
        '!has_key',
        'of_type',
        'of_length',
        'longer',
        'shorter',
        'and',
        'or',
        'is',
        '!is',
    }
)


def query_filters(nested: dict) -> dict:
    """Turn nested filters into QueryBuilder's dotted form (``Dict`` keys cannot hold dots).

    ``{'attributes': {'elements': {'contains': ['Cu']}, 'num_structures': {'>': 10}}}`` becomes
    ``{'attributes.elements': {'contains': ['Cu']}, 'attributes.num_structures': {'>': 10}}``.
    """
    result = {}
    for key, value in nested.items():
        if key in QB_OPERATORS or not isinstance(value, dict) or (value and set(value) <= QB_OPERATORS):
            result[key] = value
        else:
            for subkey, subvalue in query_filters(value).items():
                result[f'{key}.{subkey}'] = subvalue
    return result


def training_settings(settings: dict, delta_learning: bool) -> tuple[dict, list[str]]:
    """The settings the workflow hands to pacemaker, and what it changed: the split is the workflow's own
    (``data.test_size`` is dropped); delta learning switches pacemaker's ZBL core off."""
    settings = {section: dict(value) if isinstance(value, dict) else value for section, value in settings.items()}
    notes = []
    if (settings.get('data') or {}).pop('test_size', None) is not None:
        notes.append('settings data.test_size ignored: the split is made by test_fraction')
    if delta_learning:
        settings.setdefault('fit', {})['repulsion'] = None  # no second ZBL core from pacemaker
    return settings, notes


def find_by_filters(filters: dict) -> list[TrainingSetData]:
    """The ``TrainingSetData`` nodes that nested QueryBuilder ``filters`` match (by pk); a ``ValueError`` in one
    line for filters QueryBuilder cannot run (``{'id': {'in': 5}}``)."""
    dotted = query_filters(filters)
    try:
        query = orm.QueryBuilder().append(TrainingSetData, filters=dotted)
        return sorted(query.all(flat=True), key=lambda node: node.pk)
    except (TypeError, ValueError, KeyError, NotImplementedError) as exception:  # raised building the query
        reason = ' '.join(str(exception).split('\n')[0].split())[:200]
        raise ValueError(
            f'filters={filters}: not a query QueryBuilder can run ({type(exception).__name__}: {reason})'
        ) from exception


def source_nodes(inputs) -> list[TrainingSetData] | None:
    """The data the inputs point at, found without storing anything (``None``: a group, not known yet)."""
    if inputs.get('training_sets'):
        return [inputs['training_sets'][label] for label in sorted(inputs['training_sets'])]
    if inputs.get('filters'):
        return find_by_filters(inputs['filters'].get_dict())
    return None  # a group (possibly of DFT calculations): checked once its data is collected


def data_split_problem(inputs, sets: list[TrainingSetData]) -> tuple[str | None, dict]:
    """Why the distinct structures of ``sets`` leave nothing to train on (the split, or a fixed ``test_set`` that
    holds them all), and the merge counts."""
    test_set = inputs.get('test_set')
    _, info = merge_plan(sets, test_set)
    if test_set is not None:
        if not info['structures']:
            return f'every structure of the data is also in the fixed test_set ({merge_summary(info)})', info
        return None, info
    fraction = inputs['test_fraction'].value if 'test_fraction' in inputs else DEFAULT_TEST_FRACTION
    problem = split_problem(info['structures'], fraction)
    if problem and info['duplicates_dropped']:
        problem += f' ({merge_summary(info)})'
    return problem, info


#: the fit's options that a ``pace_activeset`` job takes too: where and under which account it runs
SCHEDULER_OPTIONS = ('queue_name', 'account', 'qos', 'custom_scheduler_commands', 'max_wallclock_seconds')


def active_set_options(options: orm.Dict | None) -> dict:
    """``metadata.options`` of the ``pace_activeset`` job: one process, stderr with stdout, and the fit's queue,
    account, QOS, scheduler commands and walltime (a cluster that requires them refuses a job without them)."""
    given = options.get_dict() if options is not None else {}
    taken = {name: given[name] for name in SCHEDULER_OPTIONS if name in given}
    return {'redirect_stderr': True, 'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}, **taken}


def calculation_inputs(inputs) -> dict:
    """What the calculation will get, short of the data: ``code``, ``settings``, ``metadata.options`` (the one
    ``options`` input, as the public interface has it; one machine unless it says otherwise) and the exposed
    ``base.pacemaker`` inputs (initial potential, template, ...). The validator checks it, ``train`` submits it."""
    composed = dict(inputs.get('base', {}).get('pacemaker', {}))
    for name in ('code', 'settings'):
        if inputs.get(name) is not None:
            composed[name] = inputs[name]
    options = {'resources': {'num_machines': 1}, **(inputs['options'].get_dict() if inputs.get('options') else {})}
    composed['metadata'] = {**(composed.get('metadata') or {}), 'options': options}
    return composed


def data_settings_problem(inputs, elements: list[str]) -> str | None:
    """The workflow's one check of its settings (with its own changes) against the data's elements and those of a
    fixed ``test_set``: the validator runs it for explicit data and queries, the check step for a group."""
    raw = inputs['settings'].get_dict() if inputs.get('settings') is not None else {}
    delta_learning = bool(inputs.get('delta_learning') and inputs['delta_learning'].value)
    settings, _ = training_settings(raw, delta_learning)
    fraction = inputs['test_fraction'].value if 'test_fraction' in inputs else DEFAULT_TEST_FRACTION
    test_set = inputs.get('test_set')
    if test_set is not None:
        elements = sorted(set(elements) | set(test_set.base.attributes.get('elements', [])))
    composed = {**calculation_inputs(inputs), 'settings': orm.Dict(settings)}
    return settings_problem(composed, elements, has_test_set=fraction > 0 or test_set is not None)


def validate_inputs(inputs, _) -> str | None:
    """Every check the calculation would make, before anything is stored: one data source, a valid split, ZBL
    cutoffs, the code, options and threads, and the settings (with the workflow's changes) against the elements
    of the data."""
    given = [name for name in SOURCES if inputs.get(name)]
    if len(given) != 1:
        return f'give exactly one of `group`, `filters` or `training_sets` (got: {", ".join(given) or "none"})'
    raw = inputs['settings'].get_dict() if inputs.get('settings') else {}
    delta_learning = bool(inputs.get('delta_learning') and inputs['delta_learning'].value)
    if delta_learning:
        cutoffs = inputs['zbl_cutoffs'].get_dict() if inputs.get('zbl_cutoffs') else {}
        try:
            ZBLBaseline(**cutoffs)
        except (TypeError, ValueError) as exception:
            return f'zbl_cutoffs={cutoffs}: {exception} (give {{"inner": ..., "outer": ...}} in Å)'
        message = second_zbl_core(raw)
        if message:
            return f'delta_learning fits DFT minus ZBL: {message}'
    fraction = inputs['test_fraction'].value if 'test_fraction' in inputs else DEFAULT_TEST_FRACTION
    if not 0.0 <= fraction < 1.0:
        return f'test_fraction={fraction} must lie in [0, 1)'
    seed = inputs['split_seed'].value if 'split_seed' in inputs else DEFAULT_SPLIT_SEED
    if not 0 <= seed < 2**32:
        return f'split_seed={seed} must lie in [0, 2**32)'
    if 'min_structures' in inputs and inputs['min_structures'].value < 1:
        return 'min_structures must be at least 1'
    calculation = calculation_inputs(inputs)
    # aiida-core types a namespace's ports as Port | PortNamespace; ``metadata`` is a namespace in every process
    options_port = cast(PortNamespace, PacemakerCalculation.spec().inputs['metadata'])['options']
    options_problem = options_port.validate(calculation['metadata']['options'])
    if options_problem is not None:
        return f'options: {options_problem.message}'
    message = threads_unknown(calculation) or validate_calc_job(calculation, PacemakerCalculation.spec().inputs)
    if message or not inputs.get('code'):
        return message
    try:
        sets = source_nodes(inputs)
    except ValueError as exception:
        return str(exception)
    if not sets:
        return None  # a group, or filters that match nothing: the workflow's exit codes say so
    problem, _ = data_split_problem(inputs, sets)
    if problem:
        return problem
    elements = sorted({element for node in sets for element in node.base.attributes.get('elements', [])})
    return data_settings_problem(inputs, elements) if elements else None


# the base workflow's exit code -> the training workflow's (both own their numbers)
BASE_FAILURES = {
    'ERROR_UNRECOVERABLE_FAILURE': 'ERROR_UNRECOVERABLE_FAILURE',
    'ERROR_OUT_OF_MEMORY_AT_MINIMUM_BATCH': 'ERROR_OUT_OF_MEMORY',
    'ERROR_MAXIMUM_ITERATIONS_EXCEEDED': 'ERROR_MAXIMUM_RESTARTS',
    'ERROR_UNHANDLED_FAILURE': 'ERROR_UNHANDLED_FAILURE',
}


def _as_node(value):
    """A protocol's plain value as the node the port takes (nodes pass through)."""
    if isinstance(value, orm.Data):
        return value
    if isinstance(value, dict):
        return orm.Dict(value)
    return orm.to_aiida_type(value)


def failure_code(base: orm.WorkflowNode) -> str:
    """The training workflow's exit code label for a failed (or excepted, killed) base workflow."""
    labels = {code.status: label for label, code in PacemakerBaseWorkChain.exit_codes.items()}
    label = labels.get(base.exit_status)
    if label is None:  # not an exit code of the base workflow
        return 'ERROR_TRAINING_FAILED'
    return BASE_FAILURES.get(label, 'ERROR_TRAINING_FAILED')


def failure_cause(base: orm.WorkflowNode) -> str:
    """The real cause: the last calculation's exit code (number and name) and message, with the base's verdict."""
    calculations = [node for node in base.called if isinstance(node, orm.CalcJobNode)]
    failure = failure_of(base)
    verdict = f'{failure["label"]}<{failure["pk"]}> [{failure["status"]} {failure["name"]}]'
    if not calculations:
        state = base.process_state
        assert state is not None  # a terminated process (the only kind this is called on) has its final state
        return f'{verdict}: {base.exit_message or state.value}'
    last = failure_of(max(calculations, key=lambda node: node.ctime))
    return f'{last["label"]}<{last["pk"]}> [{last["status"]} {last["name"]}] {last["message"]} ({verdict})'


#: What ``pace_activeset`` raises when an element has fewer atomic environments than functions.
TOO_FEW_ENVIRONMENTS = 'Insufficient atomic environments'


def too_few_environments(shelljob: orm.CalcJobNode) -> bool:
    """Whether a failed ``pace_activeset`` stopped for want of atomic environments (its output says so)."""
    if 'stdout' not in shelljob.outputs:
        return False
    return TOO_FEW_ENVIRONMENTS in shelljob.outputs.stdout.get_content()


class PacemakerTrainingWorkChain(ProtocolMixin, WorkChain):
    """Train an ACE potential on training data found in the AiiDA database."""

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        protocol: str | None = None,
        overrides: dict | None = None,
        *,
        training_sets: dict[str, TrainingSetData] | None = None,
        group: str | None = None,
        filters: dict | None = None,
        options: dict | None = None,
    ):
        """A builder filled from ``protocol`` (``fast``, ``moderate``, ``precise``; see ``get_available_protocols``).

        :param code: the ``pacemaker`` code.
        :param overrides: inputs merged into the protocol's (e.g. ``{'settings': {'fit': {'maxiter': 50}},
            'test_fraction': 0.2, 'base': {'max_iterations': 3}}``); plain values become nodes.
        :param training_sets, group, filters: the data source (exactly one; it can also come from ``overrides``).
        :param options: the calculation's ``metadata.options`` (resources, walltime, ...).
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        builder.code = code
        if inputs.get('settings') is not None:
            builder.settings = orm.Dict(inputs.pop('settings'))
        if options or inputs.get('options'):
            builder.options = orm.Dict({**inputs.pop('options', {}), **(options or {})})
        base = inputs.pop('base', {})
        for name, value in base.pop('pacemaker', {}).items():
            builder['base']['pacemaker'][name] = value
        for name, value in base.items():
            builder['base'][name] = _as_node(value)
        sources = {'training_sets': training_sets, 'group': group, 'filters': filters}
        for name, value in {**sources, **inputs}.items():
            if value is None:
                continue
            if name == 'training_sets':
                builder.training_sets = value
            else:
                builder[name] = _as_node(value)
        return builder

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('code', valid_type=orm.AbstractCode, help='The `pacemaker` code.')
        spec.input(
            'settings',
            valid_type=orm.Dict,
            required=False,
            validator=validate_settings,
            help='Pacemaker settings (see PacemakerSettings); `data.test_size` is replaced by test_fraction.',
        )
        spec.input(
            'options',
            valid_type=orm.Dict,
            required=False,
            help="The calculation's metadata.options (resources, max_wallclock_seconds, ...).",
        )
        spec.expose_inputs(
            PacemakerBaseWorkChain,
            namespace='base',
            exclude=(
                'pacemaker.training_set',
                'pacemaker.test_set',
                'pacemaker.code',
                'pacemaker.settings',
                'pacemaker.remote_folder',
                'pacemaker.metadata.options',
            ),
            namespace_options={
                'help': 'The rest of the PacemakerBaseWorkChain inputs: max_iterations, clean_workdir, '
                'handler_overrides, on_unhandled_failure, and under `pacemaker` initial_potential, template, '
                "monitors, metadata (the data, code, settings and options are the workflow's own inputs)."
            },
        )
        spec.input(
            'min_structures',
            valid_type=orm.Int,
            default=lambda: orm.Int(DEFAULT_MIN_STRUCTURES),
            help='Refuse to train on fewer structures.',
        )
        spec.input(
            'test_fraction',
            valid_type=orm.Float,
            default=lambda: orm.Float(DEFAULT_TEST_FRACTION),
            help='Fraction of the structures held out as the test set (0: none).',
        )
        spec.input(
            'test_set',
            valid_type=TrainingSetData,
            required=False,
            help='A fixed held-out set: the data is then not split (test_fraction is not used).',
        )
        spec.input(
            'split_seed',
            valid_type=orm.Int,
            default=lambda: orm.Int(DEFAULT_SPLIT_SEED),
            help='Seed of the train/test split.',
        )
        spec.input(
            'delta_learning',
            valid_type=orm.Bool,
            default=lambda: orm.Bool(False),
            help='Fit DFT minus the ZBL baseline (pair_style zbl inner outer); the potential carries it.',
        )
        spec.input(
            'zbl_cutoffs',
            valid_type=orm.Dict,
            default=lambda: orm.Dict(dataclasses.asdict(ZBLBaseline())),
            help="The ZBL baseline's switching cutoffs (Å), as LAMMPS's pair_style zbl inner outer.",
        )
        spec.input(
            'build_active_set',
            valid_type=orm.Bool,
            default=lambda: orm.Bool(False),
            help='Build the active set (pace_activeset, beside pacemaker) for extrapolation grades.',
        )
        spec.input(
            'activeset_code',
            valid_type=orm.AbstractCode,
            required=False,
            help='The `pace_activeset` code; default: the one beside `code` (registered when the workflow is created).',
        )
        spec.input(
            'group',
            valid_type=orm.Str,
            required=False,
            help='Label of a group of TrainingSetData, PwCalculation and/or PwBaseWorkChain nodes.',
        )
        spec.input(
            'skip_failed_dft',
            valid_type=orm.Bool,
            default=lambda: orm.Bool(False),
            help='Skip (and count) DFT calculations of the group that did not finish successfully, instead of failing.',
        )
        spec.input(
            'dft_frames',
            valid_type=orm.Str,
            default=lambda: orm.Str('last'),
            validator=lambda value, _: None if value.value in ('last', 'all') else "dft_frames must be 'last' or 'all'",
            help="Which frames of a DFT relax / MD trajectory to take: 'last' or 'all'.",
        )
        spec.input(
            'allow_mixed_dft_settings',
            valid_type=orm.Bool,
            default=lambda: orm.Bool(False),
            help='Accept DFT calculations whose energy-deciding settings (functional, pseudopotentials, cutoffs, '
            'smearing, k-point spacing) differ.',
        )
        spec.input(
            'filters',
            valid_type=orm.Dict,
            required=False,
            help='QueryBuilder filters on TrainingSetData, nested: {"attributes": {"elements": {"contains": ["Cu"]}}}.',
        )
        spec.input_namespace(
            'training_sets',
            valid_type=TrainingSetData,
            dynamic=True,
            required=False,
            help='Explicit TrainingSetData nodes.',
        )
        spec.input(
            'plots',
            valid_type=orm.Bool,
            default=lambda: orm.Bool(True),
            help='Store learning-curve and parity plots (PNG) as outputs.',
        )
        spec.inputs.validator = validate_inputs

        # plumpy types the steps of if_/while_ as Callable[[WorkChain], ...]; ours take this class (a narrower self),
        # which mypy rejects (arg-type): the outline names the steps through an untyped view of the class
        steps: Any = cls
        spec.outline(
            steps.resolve_data,
            steps.check_data,
            steps.assemble,
            steps.train,
            steps.inspect_training,
            if_(steps.should_build_active_set)(
                while_(steps.active_set_missing)(steps.build_active_set, steps.inspect_active_set),
            ),
            if_(steps.should_make_plots)(steps.make_plots),
        )
        spec.expose_outputs(
            PacemakerCalculation,
            include=(
                'potential',
                'potential_yaml',
                'metrics',
                'learning_curve',
                'train_predictions',
                'test_predictions',
            ),
        )
        spec.output('training_set', valid_type=TrainingSetData, help='The structures the potential was fitted to.')
        spec.output(
            'active_set',
            valid_type=orm.SinglefileData,
            required=False,
            help='The active set (.asi) of the B-basis potential, for extrapolation grades.',
        )
        spec.output_namespace(
            'plots',
            valid_type=orm.SinglefileData,
            dynamic=True,
            required=False,
            help='learning_curve.png and parity.png of the fit.',
        )
        spec.output('test_set', valid_type=TrainingSetData, required=False, help='The held-out structures.')

        spec.exit_code(201, 'ERROR_NO_DATA', message='no training data found: {source}')
        spec.exit_code(
            202,
            'ERROR_TOO_FEW_STRUCTURES',
            message='found {count} structures in {nodes} node(s), at least {minimum} are required',
        )
        spec.exit_code(
            203,
            'ERROR_MISSING_FORCES',
            message='{missing} of the {count} structures found have no forces; pacemaker fits forces',
        )
        spec.exit_code(
            204,
            'ERROR_UNSUPPORTED_NODES',
            message='the group holds nodes that are neither TrainingSetData nor PW calculations: {types}',
        )
        spec.exit_code(205, 'ERROR_FAILED_DFT', message='{message}')
        spec.exit_code(206, 'ERROR_MIXED_DFT_SETTINGS', message='{message}')
        spec.exit_code(207, 'ERROR_SETTINGS_DO_NOT_FIT_DATA', message='the settings do not fit the data: {message}')
        spec.exit_code(208, 'ERROR_NO_TRAINING_STRUCTURE', message='nothing to train on: {message}')
        spec.exit_code(
            310,
            'ERROR_UNRECOVERABLE_FAILURE',
            message='the fit failed and running it again cannot mend it: {cause}',
        )
        spec.exit_code(
            411, 'ERROR_OUT_OF_MEMORY', message='pacemaker ran out of memory even with batch_size 1: {cause}'
        )
        spec.exit_code(
            412,
            'ERROR_MAXIMUM_RESTARTS',
            message='the fit did not finish within base.max_iterations runs; the last one: {cause}',
        )
        spec.exit_code(413, 'ERROR_UNHANDLED_FAILURE', message='the fit failed with an unhandled failure: {cause}')
        spec.exit_code(414, 'ERROR_TRAINING_FAILED', message='the training workflow failed: {cause}')
        spec.exit_code(415, 'ERROR_ACTIVE_SET_FAILED', message='pace_activeset failed [{status}]: {message}')

    # -- steps --------------------------------------------------------------------------------------------

    def resolve_data(self):
        """Resolve the data source once; remember exactly which nodes it gave."""
        if 'group' in self.inputs:
            label = self.inputs.group.value
            try:
                group = orm.Group.collection.get(label=label)
            except Exception:
                return self.exit_codes.ERROR_NO_DATA.format(source=f'no group labelled {label!r}')
            nodes = sorted(group.nodes, key=lambda node: node.pk)
            sets = [node for node in nodes if isinstance(node, TrainingSetData)]
            calculations = [node for node in nodes if not isinstance(node, TrainingSetData)]
            others = non_pw_processes(calculations)  # other data, other calculations, workflows without PW runs
            if others:
                return self.exit_codes.ERROR_UNSUPPORTED_NODES.format(types=describe_nodes(others))
            if calculations:
                try:
                    collected = collect_from_pw(
                        calculations,
                        skip_failed=self.inputs.skip_failed_dft.value,
                        frames=self.inputs.dft_frames.value,
                        allow_mixed_settings=self.inputs.allow_mixed_dft_settings.value,
                    )
                except CollectionError as exception:
                    if exception.kind == 'mixed_settings':
                        return self.exit_codes.ERROR_MIXED_DFT_SETTINGS.format(message=str(exception))
                    return self.exit_codes.ERROR_FAILED_DFT.format(message=str(exception))
                report = collected.base.extras.get('collection', {})
                self.report(
                    f'collected {len(collected)} structures from {report.get("calculations")} DFT calculation(s); '
                    f'skipped {len(report.get("skipped_failed", []))} failed'
                )
                sets.append(collected)
            source = f'group {label!r}'
        elif 'filters' in self.inputs:
            sets = find_by_filters(self.inputs.filters.get_dict())  # the validator has run them once already
            source = f'filters {self.inputs.filters.get_dict()}'
        else:
            sets = [self.inputs.training_sets[label] for label in sorted(self.inputs.training_sets)]
            source = 'the training_sets input'
        if not sets:
            return self.exit_codes.ERROR_NO_DATA.format(source=f'{source} matched nothing')
        self.ctx.sets = sets
        self.report(f'{source}: {len(sets)} TrainingSetData node(s): {", ".join(str(s.pk) for s in sets)}')

    def check_data(self):
        """The seed's invariants: at least ``min_structures`` distinct structures, forces on every one, a split
        that leaves structures to train on."""
        problem, info = data_split_problem(self.inputs, self.ctx.sets)
        count = info['structures']
        if info['duplicates_dropped'] or info['in_test_set_dropped']:
            self.report(merge_summary(info))
        minimum = self.inputs.min_structures.value
        if count < minimum:
            dropped = info['structures_given'] - count
            return self.exit_codes.ERROR_TOO_FEW_STRUCTURES.format(
                count=f'{count} distinct ({dropped} duplicate or test_set structures dropped)' if dropped else count,
                nodes=len(self.ctx.sets),
                minimum=minimum,
            )
        missing = sum(node.base.attributes.get('num_structures_without_forces', 0) for node in self.ctx.sets)
        if missing:
            return self.exit_codes.ERROR_MISSING_FORCES.format(missing=missing, count=info['structures_given'])
        if problem:  # the validator has refused it for explicit data and queries; a group's data is known only now
            return self.exit_codes.ERROR_NO_TRAINING_STRUCTURE.format(message=problem)
        if 'group' not in self.inputs:
            return None  # the validator has checked the settings against explicit data and queries already
        # the validator's settings check, for data it could not see (a group): before anything is merged or fitted
        elements = sorted({element for node in self.ctx.sets for element in node.base.attributes.get('elements', [])})
        message = data_settings_problem(self.inputs, elements)
        if message:
            return self.exit_codes.ERROR_SETTINGS_DO_NOT_FIT_DATA.format(message=message)

    def assemble(self):
        """Merge the resolved nodes and split them (a calcfunction: the used nodes become its inputs)."""
        sets = {f'set_{index:05d}': node for index, node in enumerate(self.ctx.sets)}
        fraction = orm.Float(0.0) if 'test_set' in self.inputs else self.inputs.test_fraction
        if 'test_set' in self.inputs:
            sets['fixed_test_set'] = self.inputs.test_set
        result = assemble_training_data(test_fraction=fraction, seed=self.inputs.split_seed, **sets)
        self.ctx.training_set = result['training_set']
        self.ctx.test_set = result.get('test_set', self.inputs.get('test_set'))
        self.out('training_set', self.ctx.training_set)
        if self.ctx.test_set is not None:
            self.out('test_set', self.ctx.test_set)
        if self.inputs.delta_learning.value:
            cutoffs = self.inputs.zbl_cutoffs
            self.ctx.training_set = subtract_zbl_baseline(self.ctx.training_set, cutoffs)
            if self.ctx.test_set is not None:
                self.ctx.test_set = subtract_zbl_baseline(self.ctx.test_set, cutoffs)
            self.report(f'delta learning: fitting DFT minus ZBL (inner {cutoffs["inner"]}, outer {cutoffs["outer"]} A)')

    def train(self):
        """Run pacemaker through ``PacemakerBaseWorkChain``: the exposed ``base`` inputs, the code, settings and
        options, and the assembled data."""
        inputs = AttributeDict(self.exposed_inputs(PacemakerBaseWorkChain, namespace='base'))
        pacemaker = AttributeDict(inputs.pacemaker)
        pacemaker.code = self.inputs.code
        pacemaker.metadata = calculation_inputs(self.inputs)['metadata']
        pacemaker.training_set = self.ctx.training_set
        if self.ctx.test_set is not None:
            pacemaker.test_set = self.ctx.test_set
        raw = self.inputs.settings.get_dict() if 'settings' in self.inputs else {}
        settings, notes = training_settings(raw, self.inputs.delta_learning.value)
        for note in notes:
            self.report(note)
        if settings or 'settings' in self.inputs:
            pacemaker.settings = orm.Dict(settings)
        inputs.pacemaker = pacemaker
        running = self.submit(PacemakerBaseWorkChain, **inputs)
        self.report(f'launched PacemakerBaseWorkChain<{running.pk}> on {len(self.ctx.training_set)} structures')
        return ToContext(training=running)

    def inspect_training(self):
        """Expose the potential and metrics, or fail with a code that names the cause (the calculation's own)."""
        node = self.ctx.training
        if node.is_finished_ok:
            self.out_many(self.exposed_outputs(node, PacemakerCalculation))
            return None
        return self.exit_codes[failure_code(node)].format(cause=failure_cause(node))

    def should_make_plots(self) -> bool:
        return bool(self.inputs.plots.value)

    def make_plots(self):
        """Store the learning curve and parity plots as PNG nodes."""
        outputs = self.ctx.training.outputs
        predictions = {
            f'{split}_predictions': outputs[f'{split}_predictions']
            for split in ('train', 'test')
            if f'{split}_predictions' in outputs
        }
        self.out_many({'plots': render_plots(outputs.learning_curve, outputs.metrics, **predictions)})

    def on_create(self) -> None:
        """Register ``pace_activeset`` beside the pacemaker code when the workflow is created (in the launching
        interpreter, before any step runs); the step only looks it up."""
        super().on_create()
        if self.inputs.build_active_set.value and 'activeset_code' not in self.inputs:
            sibling_code(self.inputs.code, 'pace_activeset')

    def should_build_active_set(self) -> bool:
        return bool(self.inputs.build_active_set.value)

    def active_set_missing(self) -> bool:
        return 'active_set' not in self.outputs

    def build_active_set(self):
        """Run ``pace_activeset`` (beside pacemaker) through aiida-shell on the B-basis YAML and the fitting data;
        on the atoms of every structure (``--all-atoms``) once the default selection left too few (``inspect``)."""
        from aiida_shell import ShellJob
        from aiida_shell.launch import prepare_shell_job_inputs

        if 'fitting_data' not in self.ctx:  # extracted once: the --all-atoms run reads the same node
            retrieved = self.ctx.training.outputs.potential.creator.outputs.retrieved
            self.ctx.fitting_data = extract_retrieved_file(retrieved, orm.Str(PacemakerCalculation.FITTING_DATA))
        data = self.ctx.fitting_data
        all_atoms = self.ctx.get('active_set_all_atoms', False)
        inputs = prepare_shell_job_inputs(
            command=self.inputs.get('activeset_code') or sibling_code(self.inputs.code, 'pace_activeset', create=False),
            arguments=f'{"--all-atoms " if all_atoms else ""}-d {{data}} {{potential}}',
            nodes={'data': data, 'potential': self.ctx.training.outputs.potential_yaml},
            outputs=['*.asi'],
            metadata={
                'call_link_label': 'pace_activeset_all_atoms' if all_atoms else 'pace_activeset',
                'options': active_set_options(self.inputs.get('options')),
            },
        )
        running = self.submit(ShellJob, **inputs)
        self.report(f'launched ShellJob<{running.pk}> (pace_activeset{" --all-atoms" if all_atoms else ""})')
        return ToContext(active_set=running)

    def inspect_active_set(self):
        """Expose the ``.asi`` file. When ``pace_activeset`` left too few atomic environments of an element for its
        functions (it drops the atoms whose force error is an outlier), build it once more on all atoms."""
        node = self.ctx.active_set
        if not node.is_finished_ok:
            if not self.ctx.get('active_set_all_atoms', False) and too_few_environments(node):
                self.report(
                    f'ShellJob<{node.pk}>: too few atomic environments of an element once the atoms with outlying '
                    'force errors were left out; building the active set on all atoms (--all-atoms)'
                )
                self.ctx.active_set_all_atoms = True
                return None
            return self.exit_codes.ERROR_ACTIVE_SET_FAILED.format(status=node.exit_status, message=node.exit_message)
        (label,) = [label for label in node.outputs if label.endswith('_asi')]
        self.out('active_set', node.outputs[label])
        return None
