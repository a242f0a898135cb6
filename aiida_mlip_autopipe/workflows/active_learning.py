"""``PacemakerActiveLearningWorkChain``: train, explore, select by extrapolation grade, label, retrain.

Outline: the first fit (``PacemakerTrainingWorkChain`` with the exposed ``training`` inputs and an active set) →
per iteration: exploration (``PacemakerExplorationCalculation`` on the pacemaker code's computer: MD with the
potential and its active set, gamma per atom per step, D-optimal selection of the extrapolative configurations)
→ labelling (one process per selected structure, failures tolerated up to a fraction) → collection (one
``TrainingSetData`` whose structures name their labelling process) → retrain (upfit from the previous
``potential_yaml`` on the first data plus every label so far, the first fit's test set kept, the basis grown by
the ``refit.functions_schedule``; it replaces the previous potential only if its test errors stay within
``refit.max_test_error_ratio``) → until a stop reason (:data:`STOP_REASONS`) ends it.
"""

from __future__ import annotations

import time
from typing import Any

from aiida import orm
from aiida.common import AttributeDict
from aiida.common.links import LinkType
from aiida.engine import ToContext, WorkChain, append_, calcfunction, if_, while_
from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain

from aiida_mlip_autopipe.active_learning.calibration import (
    DataBounds,
    data_bounds,
    label_errors,
    miss_rate,
    suggested_thresholds,
)
from aiida_mlip_autopipe.active_learning.settings import (
    ConvergenceSettings,
    ExplorationSettings,
    RefitSettings,
    SelectionSettings,
    functions_for,
)
from aiida_mlip_autopipe.calculations.exploration import PacemakerExplorationCalculation
from aiida_mlip_autopipe.calculations.settings import settings_validator
from aiida_mlip_autopipe.codes import sibling_code
from aiida_mlip_autopipe.collection.pw import PW_PROCESS_TYPE, last_pw_calculation
from aiida_mlip_autopipe.data.training_set import TrainingSetData
from aiida_mlip_autopipe.labellers.base import LABELLERS, Labeller
from aiida_mlip_autopipe.labellers.emt import EMT_ELEMENTS
from aiida_mlip_autopipe.potentials.lineage import potential_lineage
from aiida_mlip_autopipe.potentials.plots import loop_figure, png
from aiida_mlip_autopipe.validation.targets import check_targets
from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain, failure_cause
from aiida_mlip_autopipe.workflows.validation import PotentialValidationWorkChain

__all__ = ('LABELLERS', 'STOP_REASONS', 'PacemakerActiveLearningWorkChain')

#: why the loop stopped (the ``stop_reason`` of the last row of the iterations table); only ``converged`` means the
#: potential no longer extrapolates on what was explored
STOP_REASONS = {
    'converged': 'fewer explored steps than convergence.fraction_above_gamma_lo reach gamma_lo',
    'max_iterations': 'max_iterations explore-label-refit cycles done',
    'selection_empty': 'nothing to label: no explored step reached gamma_lo (with fraction_above_gamma_lo 0)',
    'nothing_selected_while_extrapolating': 'explored steps reach gamma_lo, but no candidate was selected (not '
    'convergence: e.g. no frame of the window was sampled; lower sample_interval or give more starts)',
    'all_candidates_refused': 'explored steps reach gamma_lo, but every candidate was refused by a physical guard '
    '(its MD runs into unphysical configurations: lower gamma_hi or the temperatures)',
    'all_labels_refused': 'every label of the iteration was refused by a physical guard (energy or force bounds)',
    'property_targets': "every convergence.property_targets is met by the validation of the iteration's potential",
}


@calcfunction
def record_iterations(rows: orm.List, **evidence: orm.Data) -> dict:
    """The iterations table (one row per iteration), the loop plot and the calibration plot (error against gamma);
    ``evidence``: the exploration summaries and fit metrics the rows were read from (input links) and the
    ``selection`` settings."""
    from aiida_mlip_autopipe.active_learning.calibration import calibration_figure

    table = rows.get_list()
    selection = SelectionSettings.model_validate(evidence['selection'].get_dict()) if 'selection' in evidence else None
    figure = calibration_figure(
        table,
        selection.gamma_lo if selection else SelectionSettings().gamma_lo,
        selection.miss_force_threshold if selection else SelectionSettings().miss_force_threshold,
    )
    return {
        'iterations': orm.List(table),
        'loop': orm.SinglefileData.from_bytes(png(loop_figure(table)), 'loop.png'),
        'calibration': orm.SinglefileData.from_bytes(png(figure), 'calibration.png'),
    }


@calcfunction
def keep_labels(labels: TrainingSetData, keep: orm.List) -> TrainingSetData:
    """The labels at the indices ``keep`` (those the physical guards let through)."""
    return labels.select(keep.get_list())


#: the seeds of an iteration's exploration jobs lie this far apart (job 0 has the loop's seed plus the iteration)
JOB_SEED_STRIDE = 1_000_003


def exploration_shares(labels: list[str], jobs: int) -> list[list[str]]:
    """Deal the starting structures' labels out among ``jobs`` exploration calculations (round robin, none empty)."""
    jobs = max(1, min(jobs, len(labels)))
    return [labels[job::jobs] for job in range(jobs)]


def row_explorations(row: dict) -> list[int]:
    """The pks of an iteration row's exploration calculations (``exploration``: one pk, or a list with several jobs)."""
    value = row.get('exploration')
    return [] if value is None else [value] if isinstance(value, int) else list(value)


def merged_summary(summaries: list[dict]) -> dict:
    """One summary of several exploration jobs: counts added, the fraction above gamma_lo over all steps, the
    largest grade."""
    if len(summaries) == 1:
        return summaries[0]
    counts = (
        'trajectories',
        'explored_steps',
        'steps_above_gamma_lo',
        'stopped_at_gamma_hi',
        'candidates',
        'refused_candidates',
    )
    merged = {key: sum(summary.get(key, 0) for summary in summaries) for key in counts}
    explored = merged['explored_steps']
    merged['fraction_above_gamma_lo'] = merged['steps_above_gamma_lo'] / explored if explored else 0.0
    grades = [summary['max_gamma'] for summary in summaries if summary.get('max_gamma') is not None]
    merged['max_gamma'] = max(grades, default=None)
    return merged


def merged_selection(selections: list) -> dict[str, orm.StructureData]:
    """The structures several exploration jobs selected, taken in turn from each job by descending gamma (so that a
    cut at ``max_per_iteration`` keeps each job's most extrapolative ones); labels get the job's number."""
    if len(selections) == 1:
        return dict(selections[0].items())
    ranked = [
        sorted(
            ((f'job_{job:02d}_{label}', node) for label, node in selection.items()),
            key=lambda item: -item[1].base.attributes.get('exploration', {}).get('gamma', 0.0),
        )
        for job, selection in enumerate(selections)
    ]
    merged: dict[str, orm.StructureData] = {}
    for turn in range(max((len(entries) for entries in ranked), default=0)):
        for entries in ranked:
            if turn < len(entries):
                merged.setdefault(*entries[turn])
    return merged


def data_elements(training: dict) -> list[str] | None:
    """The elements of the first fit's data source, found without storing anything (None: not known yet)."""
    from aiida_mlip_autopipe.workflows.training import source_nodes

    try:
        nodes = source_nodes(training)
    except ValueError:
        return None  # filters QueryBuilder cannot run: the training workflow's validator names them
    if nodes is not None:
        return sorted({element for node in nodes for element in node.base.attributes.get('elements', [])}) or None
    if not training.get('group'):
        return None
    try:
        group = orm.Group.collection.get(label=training['group'].value)
    except Exception:
        return None  # the training workflow names the missing group
    found = set()
    for node in group.nodes:
        if isinstance(node, TrainingSetData):
            found |= set(node.base.attributes.get('elements', []))
        elif isinstance(node, orm.ProcessNode):
            for name in ('structure', 'pw__structure'):
                link = node.base.links.get_incoming(link_label_filter=name).all()
                if link:
                    found |= {kind.symbol for kind in link[0].node.kinds}
    return sorted(found) or None


def validate_inputs(inputs, _) -> str | None:
    """Exactly one labeller; the training inputs without delta learning (the exploration runs ACE alone); starting
    structures, none with an element the first fit's data lacks; at least one iteration."""
    problem = labeller_problem(inputs)
    if problem:
        return problem
    if not inputs.get('structures'):
        return 'structures: give at least one starting structure for the exploration'
    if inputs.get('max_iterations') is not None and inputs['max_iterations'].value < 1:
        return f'max_iterations={inputs["max_iterations"].value}: give at least 1 explore-label-refit cycle'
    if inputs.get('max_concurrent_labels') is not None and inputs['max_concurrent_labels'].value < 1:
        return f'max_concurrent_labels={inputs["max_concurrent_labels"].value}: give at least 1'
    jobs = inputs['exploration_jobs'].value if inputs.get('exploration_jobs') is not None else 1
    if not 1 <= jobs <= len(inputs['structures']):
        return (
            f'exploration_jobs={jobs}: give 1 to {len(inputs["structures"])}, the number of starting structures '
            '(each job explores at least one)'
        )
    problem = validation_problem(inputs)
    if problem:
        return problem
    known = data_elements(inputs.get('training', {}))
    if known is not None:
        starts = {f'structures.{label}': node for label, node in inputs['structures'].items()}
        references = (inputs.get('validation') or {}).get('structures') or {}
        starts.update({f'validation.structures.{label}': node for label, node in references.items()})
        for label, structure in sorted(starts.items()):
            missing = sorted({kind.symbol for kind in structure.kinds} - set(known))
            if missing:
                return (
                    f'{label} ({structure.get_formula()}) has {", ".join(missing)}, which the first '
                    f"fit's data lacks (it has {', '.join(known)}): the potential cannot describe it"
                )
    return None


def validation_problem(inputs) -> str | None:
    """Property targets need the ``validation`` inputs; validation takes the loop's ``labeller`` or ``pw``."""
    targets = inputs['convergence'].get_dict().get('property_targets') if inputs.get('convergence') else None
    validation = inputs.get('validation') or {}
    if targets and not validation.get('structures'):
        return (
            'convergence.property_targets needs the validation inputs: validation.structures (reference crystals) '
            'and validation.properties (e.g. {"eos": {}, "phonons": {}})'
        )
    if validation.get('structures') and 'properties' not in validation:
        return 'validation.structures is given but not validation.properties (e.g. {"eos": {}})'
    if validation.get('structures') and inputs.get('pw_protocol'):
        return 'validation runs with the `labeller` or `pw` reference; with `pw_protocol` give `pw` instead'
    return None


def labeller_problem(inputs) -> str | None:
    """Exactly one labeller, able to label the starting structures' elements; no delta learning."""
    labeller = inputs['labeller'].value if inputs.get('labeller') else None
    given = [
        name
        for name, present in (
            ('labeller', labeller),
            ('pw', inputs.get('pw')),
            ('pw_protocol', inputs.get('pw_protocol')),
        )
        if present
    ]
    if len(given) != 1:
        return (
            f'give exactly one labeller: `labeller` ({" or ".join(LABELLERS)}), the `pw` namespace or the '
            f'`pw_protocol` namespace (got: {", ".join(given) or "none"})'
        )
    if labeller is not None and labeller not in LABELLERS:
        return f'labeller={labeller!r}: known are {", ".join(LABELLERS)}; for DFT give the `pw` namespace'
    training = inputs.get('training', {})
    if training.get('delta_learning') and training['delta_learning'].value:
        return 'training.delta_learning is not supported by the loop yet: the exploration runs the ACE part alone'
    elements = {kind.symbol for structure in inputs.get('structures', {}).values() for kind in structure.kinds}
    if labeller == 'ase:emt':
        unknown = sorted(elements - EMT_ELEMENTS)
        if unknown:
            return f'EMT cannot label {", ".join(unknown)} (it knows {", ".join(sorted(EMT_ELEMENTS))})'
    if labeller is not None:
        return '`pseudo_family` is for the Quantum ESPRESSO labellers' if 'pseudo_family' in inputs else None
    if 'pw' in given and 'pseudo_family' not in inputs:
        return 'the `pw` labeller takes its pseudopotentials from `pseudo_family` (an aiida-pseudo family label)'
    if 'pseudo_family' in inputs:
        label = inputs['pseudo_family'].value
        try:
            family = orm.Group.collection.get(label=label)
        except Exception:
            return f'pseudo_family={label!r}: no such group (`aiida-pseudo list` shows the installed families)'
        missing = elements - set(getattr(family, 'elements', elements))
        if missing:
            return f'pseudo_family={label!r} has no pseudopotential for {", ".join(sorted(missing))}'
    return None


class PacemakerActiveLearningWorkChain(WorkChain):
    """Close the active-learning loop for ACE: fit, explore with the extrapolation grade, label, refit."""

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        structures: dict[str, orm.StructureData],
        protocol: str | None = None,
        overrides: dict | None = None,
        *,
        training_sets: dict[str, TrainingSetData] | None = None,
        group: str | None = None,
        filters: dict | None = None,
        options: dict | None = None,
        labeller: str = 'ase:emt',
    ):
        """A builder whose fits follow the training ``protocol`` (``fast``, ``moderate``, ``precise``).

        :param code: the ``pacemaker`` code; ``structures``: the starting configurations of the MD.
        :param overrides: ``training`` (merged into the training protocol's inputs, as for
            ``PacemakerTrainingWorkChain.get_builder_from_protocol``), ``exploration``, ``selection``,
            ``convergence``, ``refit`` (plain dicts over the settings' defaults), ``max_iterations``,
            ``max_concurrent_labels``, ``retrain_from_scratch``.
        :param training_sets, group, filters: the first fit's data source; ``options``: the fits' metadata.options.
        :param labeller: a model labeller (``ase:emt``); for Quantum ESPRESSO set ``builder.pw`` or
            ``builder.pw_protocol`` afterwards and ``builder.pop('labeller')``.
        """
        overrides = dict(overrides or {})
        training = PacemakerTrainingWorkChain.get_builder_from_protocol(
            code,
            protocol,
            overrides.pop('training', None),
            training_sets=training_sets,
            group=group,
            filters=filters,
            options=options,
        )
        builder = cls.get_builder()
        builder.training = training._inputs(prune=True)
        builder.structures = structures
        builder.labeller = orm.Str(labeller)
        for name in ('exploration', 'selection', 'convergence', 'refit'):
            if name in overrides:
                builder[name] = orm.Dict(overrides.pop(name))
        for name, value in overrides.items():
            builder[name] = value if isinstance(value, orm.Data) else orm.to_aiida_type(value)
        return builder

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(
            PacemakerTrainingWorkChain,
            namespace='training',
            exclude=('build_active_set', 'test_set'),
            namespace_options={
                'help': 'Inputs of the first fit (PacemakerTrainingWorkChain: code, settings, options and one data '
                'source); every retrain reuses them with the labelled data added.'
            },
        )
        spec.expose_inputs(PacemakerExplorationCalculation, include=('structures', 'exploration', 'selection'))
        spec.input(
            'exploration_jobs',
            valid_type=orm.Int,
            default=lambda: orm.Int(1),
            help='Exploration calculations per iteration, run at once: the starting structures are dealt out among '
            'them (at most one job per start); their selections are merged up to selection.max_per_iteration.',
        )
        spec.input(
            'convergence',
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            validator=settings_validator(ConvergenceSettings),
            help='When to stop / fail (ConvergenceSettings): fraction_above_gamma_lo, max_failed_fraction.',
        )
        spec.input('max_iterations', valid_type=orm.Int, default=lambda: orm.Int(5), help='Explore-label-refit cycles.')
        spec.input(
            'max_concurrent_labels',
            valid_type=orm.Int,
            required=False,
            help='At most this many labelling calculations run at once (submitted in batches; default: all of an '
            "iteration's at once).",
        )
        spec.input(
            'refit',
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            validator=settings_validator(RefitSettings),
            help='How refits are made (RefitSettings): functions_schedule (basis size by training-set size), '
            'max_test_error_ratio with energy_tolerance/forces_tolerance (a refit replaces the potential only if its '
            'test errors stay within them).',
        )
        spec.expose_inputs(
            PotentialValidationWorkChain,
            namespace='validation',
            include=('structures', 'properties'),
            namespace_options={
                'required': False,
                'populate_defaults': False,
                'help': "Validate each iteration's potential (PotentialValidationWorkChain, the loop's labeller as "
                'the reference, labelled once): structures and properties; convergence.property_targets may stop '
                'the loop on them.',
            },
        )
        spec.input(
            'retrain_from_scratch',
            valid_type=orm.Bool,
            default=lambda: orm.Bool(False),
            help='Refit from scratch each iteration instead of continuing from the previous potential_yaml.',
        )
        spec.input(
            'labeller',
            valid_type=orm.Str,
            required=False,
            help="A model labeller: 'ase:emt' (ASE's EMT; tests and demos, not DFT).",
        )
        spec.expose_inputs(
            PwBaseWorkChain,
            namespace='pw',
            exclude=('pw.structure', 'pw.pseudos'),
            namespace_options={
                'required': False,
                'populate_defaults': False,
                'help': 'Quantum ESPRESSO labels: the inputs of PwBaseWorkChain (code, parameters, kpoints or '
                'kpoints_distance, options; the pseudopotentials from `pseudo_family`), one run per selected '
                'structure.',
            },
        )
        spec.input_namespace(
            'pw_protocol',
            required=False,
            populate_defaults=False,
            help="Quantum ESPRESSO labels from aiida-quantumespresso's protocol: PwBaseWorkChain.get_builder_from_"
            'protocol(code, structure, protocol, overrides, options) per selected structure.',
        )
        spec.input('pw_protocol.code', valid_type=orm.AbstractCode, help='The pw.x code.')
        spec.input('pw_protocol.protocol', valid_type=orm.Str, required=False, help="'fast', 'balanced', 'stringent'.")
        spec.input('pw_protocol.overrides', valid_type=orm.Dict, required=False, help="The protocol's overrides.")
        spec.input('pw_protocol.options', valid_type=orm.Dict, required=False, help='metadata.options of pw.x.')
        spec.input(
            'pseudo_family',
            valid_type=orm.Str,
            required=False,
            help='Label of an aiida-pseudo family: the pseudopotentials of the `pw` labeller (for `pw_protocol`: '
            "instead of the protocol's family).",
        )
        spec.input(
            'exploration_code',
            valid_type=orm.AbstractCode,
            required=False,
            help='The Python interpreter with pyace for the exploration; default: `python3` beside pacemaker.',
        )
        spec.input_namespace(
            'exploration_options',
            dynamic=True,
            required=False,
            non_db=True,
            help="The exploration calculation's metadata.options (default: the fit's options, one process).",
        )
        spec.inputs.validator = validate_inputs

        # plumpy types the steps of if_/while_ as Callable[[WorkChain], ...]; ours take this class (a narrower self),
        # which mypy rejects (arg-type): the outline names the steps through an untyped view of the class
        steps: Any = cls
        spec.outline(
            steps.setup,
            steps.train,
            steps.inspect_training,
            if_(steps.should_validate)(steps.validate, steps.inspect_validation),
            while_(steps.should_iterate)(
                steps.next_iteration,
                steps.explore,
                steps.inspect_exploration,
                if_(steps.has_selection)(
                    steps.prepare_labels,
                    while_(steps.labels_remain)(steps.label),
                    steps.inspect_labelling,
                    if_(steps.should_train)(
                        steps.train,
                        steps.inspect_training,
                        if_(steps.should_validate)(steps.validate, steps.inspect_validation),
                    ),
                ),
            ),
            steps.finalize,
        )
        # the final fit's outputs (the last fit the refit check took): as the training workflow declares them
        spec.expose_outputs(
            PacemakerTrainingWorkChain,
            include=('potential', 'potential_yaml', 'metrics', 'active_set', 'training_set', 'test_set'),
        )
        spec.output('iterations', valid_type=orm.List, help='One row (dict) per iteration, see the docs.')
        spec.output_namespace(
            'plots',
            valid_type=orm.SinglefileData,
            dynamic=True,
            required=False,
            help='loop.png: errors and gamma; calibration.png: error against gamma.',
        )

        spec.exit_code(414, 'ERROR_TRAINING_FAILED', message='the fit of iteration {iteration} failed: {cause}')
        spec.exit_code(
            450, 'ERROR_EXPLORATION_FAILED', message='the exploration of iteration {iteration} failed: {cause}'
        )
        spec.exit_code(
            460,
            'ERROR_LABELLING_FAILED',
            message='{failed} of {count} labelling calculations of iteration {iteration} failed (more than '
            '{allowed:.0%}): {cause}',
        )
        spec.exit_code(440, 'ERROR_COLLECTION_FAILED', message='the labels of iteration {iteration}: {cause}')
        spec.exit_code(
            490, 'ERROR_VALIDATION_FAILED', message='the validation of iteration {iteration} failed: {cause}'
        )

    # -- helpers ------------------------------------------------------------------------------------------

    def _labeller(self) -> Labeller:
        if 'labeller' in self.inputs:
            from aiida_mlip_autopipe.labellers.emt import EMTLabeller

            return EMTLabeller()
        from aiida_mlip_autopipe.labellers.pw import PwLabeller

        family = self.inputs.pseudo_family.value if 'pseudo_family' in self.inputs else None
        reference = list(self.ctx.dft_reference)
        if self.inputs.get('pw_protocol'):
            protocol = {
                key: node.value
                if isinstance(node, orm.Str)
                else node.get_dict()
                if isinstance(node, orm.Dict)
                else node
                for key, node in self.inputs.pw_protocol.items()
            }
            return PwLabeller(protocol=protocol, pseudo_family=family, reference=reference)
        return PwLabeller(self.exposed_inputs(PwBaseWorkChain, namespace='pw'), family, reference=reference)

    def _row(self) -> dict:
        return self.ctx.rows[-1]

    def _selection(self) -> SelectionSettings:
        return SelectionSettings.model_validate(self.inputs.selection.get_dict())

    def _refit(self) -> RefitSettings:
        return RefitSettings.model_validate(self.inputs.refit.get_dict())

    def _stop(self, reason: str, message: str) -> None:
        """End the loop after this iteration with ``reason`` (a key of :data:`STOP_REASONS`), recorded in the row."""
        self.ctx.stop_reason = reason
        self._row()['stop_reason'] = reason
        self.report(f'stop ({reason}): {message}')

    def stop_after_exploration(self, summary: dict, selected: int) -> tuple[str, str] | None:
        """The stop reason an exploration gives (``None``: label and refit). Subclasses and later checks (e.g.
        property targets after a fit) add theirs through ``_stop``."""
        target = ConvergenceSettings.model_validate(self.inputs.convergence.get_dict()).fraction_above_gamma_lo
        fraction = summary['fraction_above_gamma_lo']
        if fraction < target:
            return 'converged', f'{fraction:.2%} of the steps above gamma_lo (target {target:.2%})'
        if selected:
            return None
        if not summary.get('steps_above_gamma_lo'):
            return 'selection_empty', 'no explored step reached gamma_lo; nothing to label'
        if summary.get('refused_candidates') and not summary.get('candidates'):
            return (
                'all_candidates_refused',
                f'{fraction:.2%} of the steps above gamma_lo, but all {summary["refused_candidates"]} candidates were '
                'refused by the distance guard (not converged)',
            )
        return (
            'nothing_selected_while_extrapolating',
            f'{fraction:.2%} of the steps above gamma_lo but nothing selected (not converged)',
        )

    def stop_after_training(self) -> tuple[str, str] | None:
        """The stop reason a finished fit gives (``None``: go on); the hook for property targets."""
        return None

    # -- steps --------------------------------------------------------------------------------------------

    def setup(self):
        self.ctx.iteration = 0
        self.ctx.labelled = []  # one TrainingSetData per iteration
        self.ctx.rows = [{'iteration': 0, 'started': time.time(), 'stop_reason': None}]
        self.ctx.stop_reason = None
        self.ctx.first_sets = None
        self.ctx.test_set = None
        self.ctx.bounds = None
        self.ctx.functions = None  # functions per element of the current potential
        self.ctx.accepted_metrics = None
        self.ctx.errors = []  # every LabelError so far (as dicts), for the suggested thresholds
        self.ctx.dft_reference = []  # pks of PW calculations the labels' settings must agree with

    def _training_size(self, inputs) -> int | None:
        """Training structures of the fit about to run (None: not known before the data is resolved)."""
        if self.ctx.iteration > 0:
            return sum(len(node) for node in inputs.training_sets.values())
        if 'training_sets' not in inputs:
            return None
        total = sum(len(node) for node in inputs.training_sets.values())
        fraction = inputs.test_fraction.value if 'test_fraction' in inputs else 0.0
        return round(total * (1 - fraction))

    def _scheduled_settings(self, inputs) -> tuple[dict, int | None, bool]:
        """The fit's settings with the scheduled functions per element; whether the basis grows (ladder upfit)."""
        settings = inputs.settings.get_dict() if 'settings' in inputs else {}
        functions_block = dict(settings.get('potential', {}).get('functions', {}))
        target = functions_block.get('number_of_functions_per_element')
        size = self._training_size(inputs)
        functions = functions_for(self._refit().functions_schedule, size or 0, target, self.ctx.functions)
        if functions is None:
            return settings, None, False
        functions_block['number_of_functions_per_element'] = functions
        settings = {**settings, 'potential': {**settings.get('potential', {}), 'functions': functions_block}}
        grows = self.ctx.functions is not None and functions > self.ctx.functions
        return settings, functions, grows

    def train(self):
        """The first fit on the given data source; later fits on the first fit's data plus all labels so far,
        continuing from the previous B-basis YAML (unless ``retrain_from_scratch``; extended by pacemaker's ladder
        when the schedule grows the basis), with the same test set."""
        inputs = AttributeDict(self.exposed_inputs(PacemakerTrainingWorkChain, namespace='training'))
        inputs.build_active_set = orm.Bool(True)
        if self.ctx.iteration > 0:
            for name in ('group', 'filters', 'training_sets'):
                inputs.pop(name, None)
            sets = dict(self.ctx.first_sets)
            sets.update({f'labelled_{index + 1:03d}': node for index, node in enumerate(self.ctx.labelled)})
            inputs.training_sets = sets
            if self.ctx.test_set is not None:
                inputs.test_set = self.ctx.test_set
        settings, functions, grows = self._scheduled_settings(inputs)
        if self.ctx.iteration > 0 and not self.inputs.retrain_from_scratch.value:
            if grows:  # pacemaker's ladder: the previous basis extended to the new size in one step, then fitted
                settings = {**settings, 'fit': {**settings.get('fit', {}), 'ladder_step': 1_000_000}}
            base = AttributeDict(inputs.get('base', {}))
            base.pacemaker = {**dict(base.get('pacemaker', {})), 'initial_potential': self.ctx.potential_yaml}
            inputs.base = base
        if functions is not None:
            inputs.settings = orm.Dict(settings)
        self.ctx.next_functions = functions
        inputs.metadata = {'call_link_label': f'train_iteration_{self.ctx.iteration:02d}'}
        running = self.submit(PacemakerTrainingWorkChain, **inputs)
        self.report(
            f'iteration {self.ctx.iteration}: launched PacemakerTrainingWorkChain<{running.pk}>'
            + (f' ({functions} functions per element)' if functions is not None else '')
        )
        return ToContext(training=running)

    def _accepts(self, metrics: dict) -> tuple[bool, str]:
        """Whether a refit may replace the previous potential: no test error above the allowed ratio of the
        previous one by more than its tolerance (meV/Å, meV/atom); always when the previous potential extrapolated
        on every frame it explored (``fraction_above_gamma_lo`` 1)."""
        refit = self._refit()
        ratio, previous = refit.max_test_error_ratio, self.ctx.accepted_metrics
        if ratio is None or previous is None or self.ctx.test_set is None:
            return True, ''
        if (self._row().get('fraction_above_gamma_lo') or 0.0) >= 1.0:
            # every frame the previous potential explored was extrapolation: its score on the (cold, first-data) test
            # set says nothing about where the loop works, and keeping it would explore the same way again
            return True, ''
        worse = []
        tolerances = {'rmse_forces_test': refit.forces_tolerance, 'rmse_energy_test': refit.energy_tolerance}
        for key, tolerance in tolerances.items():
            old, new = previous.get(key), metrics.get(key)
            if old is not None and new is not None and new > ratio * old and new > old + tolerance:
                worse.append(f'{key} {new:.4g} > {ratio} x {old:.4g} and > {old:.4g} + {tolerance:g}')
        return not worse, '; '.join(worse)

    def inspect_training(self):
        node = self.ctx.training
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_TRAINING_FAILED.format(iteration=self.ctx.iteration, cause=failure_cause(node))
        outputs = node.outputs
        metrics = outputs.metrics.get_dict()
        accepted, why = self._accepts(metrics)
        row = self._row()
        row.update(
            {
                'training_structures': len(outputs.training_set),
                'functions': self.ctx.next_functions,
                'rmse_energy_train': metrics.get('rmse_energy_train'),
                'rmse_forces_train': metrics.get('rmse_forces_train'),
                'rmse_energy_test': metrics.get('rmse_energy_test'),
                'rmse_forces_test': metrics.get('rmse_forces_test'),
                'training': node.pk,
                'accepted': accepted,
            }
        )
        if accepted:
            self.ctx.potential, self.ctx.potential_yaml = outputs.potential, outputs.potential_yaml
            self.ctx.active_set, self.ctx.metrics = outputs.active_set, outputs.metrics
            self.ctx.training_set = outputs.training_set
            self.ctx.accepted_metrics = metrics
            self.ctx.functions = self.ctx.next_functions
        else:
            self.report(
                f'iteration {self.ctx.iteration}: the refit is not taken ({why}); the previous potential stays, '
                'the labels are kept for the next fit'
            )
        if self.ctx.iteration == 0:  # later fits: its training part plus the labels; its test set stays held out
            self.ctx.first_sets = {'initial': outputs.training_set}
            self.ctx.bounds = data_bounds(outputs.training_set.get_arrays()).as_dict()
            self.ctx.dft_reference = [
                calculation.pk
                for calculation in potential_lineage(outputs.potential).dft_calculations
                if calculation.process_type == PW_PROCESS_TYPE
            ]
            self.ctx.test_set = outputs.test_set if 'test_set' in outputs else None
        self._end_row()
        stop = self.stop_after_training()
        if stop is not None:
            self._stop(*stop)
        return None

    def should_validate(self) -> bool:
        """Validate the potential this iteration's fit made (not when the refit was not taken: nothing changed)."""
        return 'structures' in self.inputs.get('validation', {}) and bool(self._row().get('accepted', True))

    def validate(self):
        """The physics of the current potential against the loop's labeller; the reference labels of the first
        validation are reused by every later one (no reference calculation runs twice)."""
        inputs = AttributeDict(self.exposed_inputs(PotentialValidationWorkChain, namespace='validation'))
        inputs.potential = self.ctx.potential
        inputs.active_set = self.ctx.active_set
        if 'labeller' in self.inputs:
            inputs.labeller = self.inputs.labeller
        else:
            inputs.pw = self.exposed_inputs(PwBaseWorkChain, namespace='pw')
            inputs.pseudo_family = self.inputs.pseudo_family
        if self.ctx.get('validation_reference') is not None:
            inputs.reference = self.ctx.validation_reference
        inputs.metadata = {'call_link_label': f'validate_iteration_{self.ctx.iteration:02d}'}
        running = self.submit(PotentialValidationWorkChain, **inputs)
        self.report(f'iteration {self.ctx.iteration}: launched PotentialValidationWorkChain<{running.pk}>')
        return ToContext(validation=running)

    def inspect_validation(self):
        """Record the validated quantities in the row; stop when every property target is met."""
        node = self.ctx.validation
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_VALIDATION_FAILED.format(
                iteration=self.ctx.iteration,
                cause=f'{node.process_label}<{node.pk}> {node.exit_status}: '
                f'{node.exit_message or node.process_state.value}',
            )
        if 'reference_labels' in node.outputs and self.ctx.get('validation_reference') is None:
            self.ctx.validation_reference = node.outputs.reference_labels
        table = node.outputs.properties.get_dict()
        row = self._row()
        row['validation'] = node.pk
        row['properties'] = {
            structure: {
                quantity: {key: values.get(key) for key in ('potential', 'reference', 'error', 'relative_error')}
                for quantity, values in quantities.items()
            }
            for structure, quantities in table.items()
        }
        targets = ConvergenceSettings.model_validate(self.inputs.convergence.get_dict()).property_targets
        if not targets:
            return None
        met, lines = check_targets(table, targets)
        row['property_targets_met'] = met
        self.report(f'iteration {self.ctx.iteration}: property targets ' + '; '.join(lines))
        if met:
            self._stop('property_targets', '; '.join(lines))
        return None

    def should_iterate(self) -> bool:
        """Another cycle unless a stop reason was given; at ``max_iterations`` the reason is ``max_iterations``."""
        if self.ctx.stop_reason is not None:
            return False
        if self.ctx.iteration >= self.inputs.max_iterations.value:
            self._stop('max_iterations', f'{self.ctx.iteration} iteration(s) done')
            return False
        return True

    def next_iteration(self):
        self.ctx.iteration += 1
        self.ctx.rows.append({'iteration': self.ctx.iteration, 'started': time.time(), 'stop_reason': None})

    def _end_row(self) -> None:
        row = self._row()
        row['wall_time'] = round(time.time() - row['started'], 3)

    def on_create(self) -> None:
        """Register the tools beside the pacemaker code that the loop uses (``python3`` for the exploration unless
        ``exploration_code`` is given, ``pace_activeset`` for every fit's active set) when the loop is created, before
        any step runs; the steps and the fits they launch only look them up."""
        super().on_create()
        code = self.inputs.training.code
        if 'exploration_code' not in self.inputs:
            sibling_code(code, 'python3')
        if 'activeset_code' not in self.inputs.training:
            sibling_code(code, 'pace_activeset')

    def explore(self):
        """Run the exploration with the current potential and its active set on the pacemaker code's computer: one
        calculation, or ``exploration_jobs`` of them at once, each with its share of the starting structures."""
        training_code = self.inputs.training.code
        code = self.inputs.get('exploration_code') or sibling_code(training_code, 'python3', create=False)
        inputs = AttributeDict(self.exposed_inputs(PacemakerExplorationCalculation))
        seed = ExplorationSettings.model_validate(inputs.exploration.get_dict()).seed + self.ctx.iteration
        if self.ctx.bounds is not None and self.ctx.bounds['min_distances']:
            inputs.min_distances = orm.Dict(self.ctx.bounds['min_distances'])
        options = dict(self.inputs.get('exploration_options', {}))
        if not options and 'options' in self.inputs.training:  # the fit's queue, account, walltime; one process
            options = {
                key: value
                for key, value in self.inputs.training.options.get_dict().items()
                if key not in ('parser_name', 'input_filename', 'output_filename')
            }
            if options.get('resources'):
                options['resources'] = {**options['resources'], 'num_mpiprocs_per_machine': 1}
        shares = exploration_shares(sorted(inputs.structures), self.inputs.exploration_jobs.value)
        self.ctx.explorations = []
        for job, labels in enumerate(shares):
            exploration = {**inputs.exploration.get_dict(), 'seed': (seed + JOB_SEED_STRIDE * job) % 2**32}
            link = f'explore_iteration_{self.ctx.iteration:02d}' + (f'_job_{job:02d}' if len(shares) > 1 else '')
            running = self.submit(
                PacemakerExplorationCalculation,
                **{
                    **inputs,
                    'structures': {label: inputs.structures[label] for label in labels},
                    'exploration': orm.Dict(exploration),
                    'code': code,
                    'potential': self.ctx.potential_yaml,
                    'active_set': self.ctx.active_set,
                    'metadata': {'options': options, 'call_link_label': link},
                },
            )
            self.report(
                f'iteration {self.ctx.iteration}: launched PacemakerExplorationCalculation<{running.pk}> '
                f'({len(labels)} of {len(inputs.structures)} starts)'
            )
            self.to_context(explorations=append_(running))

    def inspect_exploration(self):
        nodes = list(self.ctx.explorations)
        for node in nodes:
            if not node.is_finished_ok:
                cause = f'{node.process_label}<{node.pk}> [{node.exit_status}] {node.exit_message}'
                return self.exit_codes.ERROR_EXPLORATION_FAILED.format(iteration=self.ctx.iteration, cause=cause)
        summary = merged_summary([node.outputs.summary.get_dict() for node in nodes])
        selection = self._selection()
        selected = merged_selection([node.outputs.selected for node in nodes if 'selected' in node.outputs])
        selected = dict(list(selected.items())[: selection.max_per_iteration])
        calibration = merged_selection([node.outputs.calibration for node in nodes if 'calibration' in node.outputs])
        calibration = dict(list(calibration.items())[: selection.calibration_samples])
        self._row().update(
            {
                'exploration': nodes[0].pk if len(nodes) == 1 else [node.pk for node in nodes],
                'explored_steps': summary['explored_steps'],
                'fraction_above_gamma_lo': summary['fraction_above_gamma_lo'],
                'max_gamma': summary['max_gamma'],
                'stopped_at_gamma_hi': summary['stopped_at_gamma_hi'],
                'candidates': summary['candidates'],
                'refused_candidates': summary.get('refused_candidates', 0),
                'selected': len(selected),
                'calibration': len(calibration) if selected else 0,
                'labelled': 0,
                'failed': 0,
                'refused': 0,
            }
        )
        self.report(
            f'iteration {self.ctx.iteration}: {summary["explored_steps"]} steps explored, '
            f'{summary["fraction_above_gamma_lo"]:.1%} above gamma_lo, max gamma {summary["max_gamma"]}, '
            f'{summary["candidates"]} candidates ({summary.get("refused_candidates", 0)} refused), '
            f'{len(selected)} selected, {len(calibration)} calibration frames below gamma_lo'
        )
        stop = self.stop_after_exploration(summary, len(selected))
        if stop is not None:
            self._end_row()
            self._stop(*stop)
        self.ctx.selected = dict(sorted(selected.items()))
        self.ctx.calibration = dict(sorted(calibration.items()))

    def has_selection(self) -> bool:
        return self.ctx.stop_reason is None

    def prepare_labels(self):
        """Queue the selected structures and the calibration frames for labelling."""
        self.ctx.queue = [('selected', label) for label in self.ctx.selected]
        self.ctx.queue += [('calibration', label) for label in self.ctx.calibration]
        self.ctx.finished_labels = []
        self.ctx.labels = []
        self.ctx.label_batches = 0

    def labels_remain(self) -> bool:
        return bool(self.ctx.queue)

    def label(self):
        """Launch the next batch of labelling processes (at most ``max_concurrent_labels``; submitted ones run
        concurrently and the next batch waits for them)."""
        cap = self.inputs.max_concurrent_labels.value if 'max_concurrent_labels' in self.inputs else len(self.ctx.queue)
        batch, self.ctx.queue = self.ctx.queue[:cap], self.ctx.queue[cap:]
        labeller = self._labeller()
        self.ctx.label_batches += 1
        waiting: dict[str, orm.ProcessNode] = {}
        for kind, label in batch:
            structure = (self.ctx.selected if kind == 'selected' else self.ctx.calibration)[label]
            prefix = 'label' if kind == 'selected' else 'calibrate'
            node = labeller.launch(self, structure, f'{prefix}_{self.ctx.iteration:02d}_{label}')
            if node.is_terminated:
                self.ctx.finished_labels.append(node)
            else:
                waiting[f'label_{len(self.ctx.labels) + len(waiting)}'] = node
        self.report(
            f'iteration {self.ctx.iteration}: labelling batch {self.ctx.label_batches}: {len(batch)} structures '
            f'({labeller.name}), {len(self.ctx.queue)} to go'
        )
        for node in waiting.values():
            self.to_context(labels=append_(node))

    def _origin(self, process: orm.ProcessNode) -> dict | None:
        """The ``exploration`` attribute of the structure a labelling process was given."""
        for name in ('structure', 'pw__structure'):
            incoming = process.base.links.get_incoming(link_label_filter=name).all()
            if incoming:
                return incoming[0].node.base.attributes.get('exploration', None)
        for child in process.called:  # e.g. a PwBaseWorkChain's PwCalculation
            origin = self._origin(child)
            if origin is not None:
                return origin
        return None

    def _calibrate(self, collected: TrainingSetData) -> list[int]:
        """Compare the current potential with the new labels (error against gamma, miss rate below gamma_lo,
        suggested thresholds) and apply the physical guards; return the indices of the labels to train on."""
        from aiida_mlip_autopipe.data.sources import parse_node_source

        selection = self._selection()
        uuids = [parse_node_source(source) for source in collected.get_sources()]
        query = orm.QueryBuilder().append(orm.ProcessNode, filters={'uuid': {'in': [u for u in uuids if u]}})
        processes = {node.uuid: node for node in query.all(flat=True)}
        origins = []
        for uuid in uuids:
            origin = self._origin(processes[uuid]) if uuid in processes else None
            origins.append(origin or {'gamma': float('nan')})
        bounds = DataBounds(**self.ctx.bounds) if self.ctx.bounds else None
        reference = self.ctx.potential_yaml.base.attributes.get('reference_energy', None) or {}
        errors = label_errors(
            collected.get_arrays(),
            origins,
            reference,
            bounds,
            selection.max_energy_above_data,
            selection.max_force_ratio,
            selection.gamma_lo,
        )
        self.ctx.errors = list(self.ctx.errors) + [error.as_dict() for error in errors]
        from aiida_mlip_autopipe.active_learning.calibration import LabelError

        everything = [LabelError(**entry) for entry in self.ctx.errors]
        rate = miss_rate(errors, selection.miss_force_threshold)
        row = self._row()
        row.update(
            {
                'refused': sum(error.refused is not None for error in errors),
                'calibration_labelled': sum(error.below_gamma_lo for error in errors),
                'miss_rate': rate,
                'error_vs_gamma': [error.as_dict() for error in errors],
                'suggested': suggested_thresholds(everything, selection.miss_force_threshold),
            }
        )
        for error in errors:
            if error.refused:
                self.report(
                    f'iteration {self.ctx.iteration}: label at gamma {error.gamma:.3g} refused: {error.refused}'
                )
        if rate is not None:
            self.report(
                f'iteration {self.ctx.iteration}: miss rate {rate:.0%} below gamma_lo (force RMSE above '
                f'{selection.miss_force_threshold} eV/Å); suggested thresholds {row["suggested"]}'
            )
        return [index for index, error in enumerate(errors) if error.refused is None]

    def inspect_labelling(self):
        """Tolerate failed labels up to ``max_failed_fraction``; collect the successful ones with their lineage,
        calibrate gamma on them and keep those within the physical bounds."""
        nodes = self.ctx.finished_labels + list(self.ctx.get('labels', []))
        good = [node for node in nodes if node.is_finished_ok]
        failed = [node for node in nodes if not node.is_finished_ok]
        row = self._row()
        calibrating = [node for node in good if self._is_calibration(node)]
        row.update(
            {
                'labelled': len(good) - len(calibrating),
                'failed': len(failed),
                'label_batches': self.ctx.label_batches,
            }
        )
        allowed = ConvergenceSettings.model_validate(self.inputs.convergence.get_dict()).max_failed_fraction
        for node in failed:
            self.report(f'labelling {node.process_label}<{node.pk}> failed [{node.exit_status}] {node.exit_message}')
        if nodes and (len(failed) / len(nodes) > allowed or not good):
            first = failed[0]
            cause = f'e.g. {first.process_label}<{first.pk}> [{first.exit_status}] {first.exit_message}'
            return self.exit_codes.ERROR_LABELLING_FAILED.format(
                failed=len(failed), count=len(nodes), iteration=self.ctx.iteration, allowed=allowed, cause=cause
            )
        labeller = self._labeller()
        try:
            collected = labeller.collect(good)
        except Exception as exception:  # a CollectionError (mixed DFT settings), a label that cannot be stored
            return self.exit_codes.ERROR_COLLECTION_FAILED.format(iteration=self.ctx.iteration, cause=str(exception))
        if not self.ctx.dft_reference and labeller.is_dft:  # the first DFT labels set the settings for the rest
            reference = []
            for node in good:
                calculation = last_pw_calculation(node)
                assert calculation is not None  # the pw labeller's collect above (no failed skipped) found each one
                reference.append(calculation.pk)
            self.ctx.dft_reference = reference
        keep = self._calibrate(collected)
        self._row()['added'] = len(keep)
        if not keep:
            self._end_row()
            self._stop('all_labels_refused', f'all {len(collected)} labels are outside the physical bounds')
            return None
        if len(keep) < len(collected):
            collected = keep_labels(collected, orm.List(keep))
        self.ctx.labelled.append(collected)
        self.report(
            f'iteration {self.ctx.iteration}: {len(collected)} labelled structures in TrainingSetData<{collected.pk}>'
        )
        return None

    @staticmethod
    def _is_calibration(node: orm.ProcessNode) -> bool:
        """Whether a labelling process labelled a calibration frame (its call link ``calibrate_NN_...``)."""
        incoming = node.base.links.get_incoming(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).all()
        return any(link.link_label.startswith('calibrate_') for link in incoming)

    def should_train(self) -> bool:
        return self.ctx.stop_reason is None

    def finalize(self):
        """Expose the final potential, its data, the iterations table and the loop plot."""
        self.out('potential', self.ctx.potential)
        self.out('potential_yaml', self.ctx.potential_yaml)
        self.out('metrics', self.ctx.metrics)
        self.out('active_set', self.ctx.active_set)
        self.out('training_set', self.ctx.training_set)
        if self.ctx.test_set is not None:
            self.out('test_set', self.ctx.test_set)
        rows = [{key: value for key, value in row.items() if key != 'started'} for row in self.ctx.rows]
        evidence = {}
        for row in rows:
            if row.get('training') is not None:
                evidence[f'metrics_{row["iteration"]:02d}'] = orm.load_node(row['training']).outputs.metrics
            explorations = row_explorations(row)
            for job, pk in enumerate(explorations):
                suffix = f'_job_{job:02d}' if len(explorations) > 1 else ''
                evidence[f'summary_{row["iteration"]:02d}{suffix}'] = orm.load_node(pk).outputs.summary
        recorded = record_iterations(rows=orm.List(rows), selection=self.inputs.selection, **evidence)
        self.out('iterations', recorded['iterations'])
        self.out('plots', {'loop': recorded['loop'], 'calibration': recorded['calibration']})
        converged = self.ctx.stop_reason == 'converged'
        self.report(
            f'finished after {self.ctx.iteration} iteration(s): stop reason {self.ctx.stop_reason} '
            f'({"converged" if converged else "not converged"}); '
            f'{sum(len(node) for node in self.ctx.labelled)} structures labelled'
        )
