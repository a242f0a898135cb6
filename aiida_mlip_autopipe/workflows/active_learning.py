"""``PacemakerActiveLearningWorkChain``: train, explore, select by extrapolation grade, label, retrain.

Outline: the first fit (``PacemakerTrainingWorkChain`` with the exposed ``training`` inputs and an active set) →
per iteration: exploration (``PacemakerExplorationCalculation`` on the pacemaker code's computer: MD with the
potential and its active set, gamma per atom per step, D-optimal selection of the extrapolative configurations)
→ labelling (one process per selected structure, failures tolerated up to a fraction) → collection (one
``TrainingSetData`` whose structures name their labelling process) → retrain (upfit from the previous
``potential_yaml`` on the first data plus every label so far, the first fit's test set kept) → until the fraction
of explored steps above gamma_lo falls below the target, nothing is selected, or ``max_iterations``.
"""

from __future__ import annotations

import time

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, append_, calcfunction, if_, while_

from aiida_mlip_autopipe.active_learning.settings import ConvergenceSettings, ExplorationSettings
from aiida_mlip_autopipe.calculations.exploration import PacemakerExplorationCalculation
from aiida_mlip_autopipe.codes import sibling_code
from aiida_mlip_autopipe.config import settings_validator
from aiida_mlip_autopipe.data.training_set import TrainingSetData
from aiida_mlip_autopipe.importers.pw import PW_PROCESS_TYPE, last_pw_calculation
from aiida_mlip_autopipe.labellers.base import Labeller
from aiida_mlip_autopipe.potentials.lineage import potential_lineage
from aiida_mlip_autopipe.potentials.plots import loop_figure, png
from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain, failure_cause

__all__ = ('LABELLERS', 'PacemakerActiveLearningWorkChain')

#: the model labellers a ``labeller`` string names (DFT labellers are input namespaces, e.g. ``pw``)
LABELLERS = ('ase:emt',)


def _pw_workchain():
    """aiida-quantumespresso's ``PwBaseWorkChain`` if it is installed (the ``dft`` extra), else ``None``."""
    try:
        from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain
    except ImportError:
        return None
    return PwBaseWorkChain


@calcfunction
def record_iterations(rows: orm.List, **evidence: orm.Data) -> dict:
    """The iterations table (one row per iteration) and the loop plot; ``evidence``: the exploration summaries and
    fit metrics the rows were read from (input links)."""
    table = rows.get_list()
    return {'iterations': orm.List(table), 'loop': orm.SinglefileData.from_bytes(png(loop_figure(table)), 'loop.png')}


def validate_inputs(inputs, _) -> str | None:
    """Exactly one labeller; the training inputs without delta learning (the exploration runs ACE alone)."""
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
        from ase.calculators.emt import parameters

        unknown = sorted(elements - set(parameters))
        if unknown:
            return f'EMT cannot label {", ".join(unknown)} (it knows {", ".join(sorted(parameters))})'
    if labeller is not None:
        return '`pseudo_family` is for the Quantum ESPRESSO labellers' if 'pseudo_family' in inputs else None
    if _pw_workchain() is None:
        return 'the Quantum ESPRESSO labellers need aiida-quantumespresso: pip install "aiida-mlip-autopipe[dft]"'
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
            ``convergence`` (plain dicts over the settings' defaults), ``max_iterations``, ``retrain_from_scratch``.
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
        for name in ('exploration', 'selection', 'convergence'):
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
            'convergence',
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            validator=settings_validator(ConvergenceSettings),
            help='When to stop / fail (ConvergenceSettings): fraction_above_gamma_lo, max_failed_fraction.',
        )
        spec.input('max_iterations', valid_type=orm.Int, default=lambda: orm.Int(5), help='Explore-label-refit cycles.')
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
        pw_workchain = _pw_workchain()
        if pw_workchain is not None:
            spec.expose_inputs(
                pw_workchain,
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
        else:
            spec.input_namespace('pw', dynamic=True, required=False, help='Needs aiida-quantumespresso.')
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

        spec.outline(
            cls.setup,
            cls.train,
            cls.inspect_training,
            while_(cls.should_iterate)(
                cls.next_iteration,
                cls.explore,
                cls.inspect_exploration,
                if_(cls.has_selection)(
                    cls.label,
                    cls.inspect_labelling,
                    cls.train,
                    cls.inspect_training,
                ),
            ),
            cls.finalize,
        )
        spec.output('potential', valid_type=orm.SinglefileData, help='The final potential (.yace).')
        spec.output('potential_yaml', valid_type=orm.SinglefileData, help='Its B-basis YAML.')
        spec.output('metrics', valid_type=orm.Dict, help='Metrics of the final fit.')
        spec.output('active_set', valid_type=orm.SinglefileData, help='The active set (.asi) of the final potential.')
        spec.output('training_set', valid_type=TrainingSetData, help='The structures of the final fit.')
        spec.output('test_set', valid_type=TrainingSetData, required=False, help='The fixed held-out set.')
        spec.output('iterations', valid_type=orm.List, help='One row (dict) per iteration, see the docs.')
        spec.output_namespace(
            'plots', valid_type=orm.SinglefileData, dynamic=True, required=False, help='loop.png: errors and gamma.'
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
        return PwLabeller(self.exposed_inputs(_pw_workchain(), namespace='pw'), family, reference=reference)

    def _row(self) -> dict:
        return self.ctx.rows[-1]

    # -- steps --------------------------------------------------------------------------------------------

    def setup(self):
        self.ctx.iteration = 0
        self.ctx.labelled = []  # one TrainingSetData per iteration
        self.ctx.rows = [{'iteration': 0, 'started': time.time()}]
        self.ctx.converged = False
        self.ctx.first_sets = None
        self.ctx.test_set = None
        self.ctx.dft_reference = []  # pks of PW calculations the labels' settings must agree with

    def train(self):
        """The first fit on the given data source; later fits on the first fit's data plus all labels so far,
        continuing from the previous B-basis YAML (unless ``retrain_from_scratch``), with the same test set."""
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
            if not self.inputs.retrain_from_scratch.value:
                base = AttributeDict(inputs.get('base', {}))
                base.pacemaker = {**dict(base.get('pacemaker', {})), 'initial_potential': self.ctx.potential_yaml}
                inputs.base = base
        inputs.metadata = {'call_link_label': f'train_iteration_{self.ctx.iteration:02d}'}
        running = self.submit(PacemakerTrainingWorkChain, **inputs)
        self.report(f'iteration {self.ctx.iteration}: launched PacemakerTrainingWorkChain<{running.pk}>')
        return ToContext(training=running)

    def inspect_training(self):
        node = self.ctx.training
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_TRAINING_FAILED.format(iteration=self.ctx.iteration, cause=failure_cause(node))
        outputs = node.outputs
        self.ctx.potential, self.ctx.potential_yaml = outputs.potential, outputs.potential_yaml
        self.ctx.active_set, self.ctx.metrics = outputs.active_set, outputs.metrics
        self.ctx.training_set = outputs.training_set
        if self.ctx.iteration == 0:  # later fits: its training part plus the labels; its test set stays held out
            self.ctx.first_sets = {'initial': outputs.training_set}
            self.ctx.dft_reference = [
                calculation.pk
                for calculation in potential_lineage(outputs.potential).dft_calculations
                if calculation.process_type == PW_PROCESS_TYPE
            ]
            self.ctx.test_set = outputs.test_set if 'test_set' in outputs else None
        metrics = outputs.metrics.get_dict()
        row = self._row()
        row.update(
            {
                'training_structures': len(outputs.training_set),
                'rmse_energy_train': metrics.get('rmse_energy_train'),
                'rmse_forces_train': metrics.get('rmse_forces_train'),
                'rmse_energy_test': metrics.get('rmse_energy_test'),
                'rmse_forces_test': metrics.get('rmse_forces_test'),
                'training': node.pk,
            }
        )
        self._end_row()
        return None

    def should_iterate(self) -> bool:
        """Another cycle unless converged or at ``max_iterations``."""
        return not self.ctx.converged and self.ctx.iteration < self.inputs.max_iterations.value

    def next_iteration(self):
        self.ctx.iteration += 1
        self.ctx.rows.append({'iteration': self.ctx.iteration, 'started': time.time()})

    def _end_row(self) -> None:
        row = self._row()
        row['wall_time'] = round(time.time() - row['started'], 3)

    def explore(self):
        """Run the exploration with the current potential and its active set on the pacemaker code's computer."""
        training_code = self.inputs.training.code
        code = self.inputs.get('exploration_code') or sibling_code(training_code, 'python3')
        inputs = AttributeDict(self.exposed_inputs(PacemakerExplorationCalculation))
        exploration = inputs.exploration.get_dict()
        exploration['seed'] = (ExplorationSettings.model_validate(exploration).seed + self.ctx.iteration) % 2**32
        inputs.exploration = orm.Dict(exploration)
        options = dict(self.inputs.get('exploration_options', {}))
        if not options and 'options' in self.inputs.training:  # the fit's queue, account, walltime; one process
            options = {
                key: value
                for key, value in self.inputs.training.options.get_dict().items()
                if key not in ('parser_name', 'input_filename', 'output_filename')
            }
            if options.get('resources'):
                options['resources'] = {**options['resources'], 'num_mpiprocs_per_machine': 1}
        running = self.submit(
            PacemakerExplorationCalculation,
            **inputs,
            code=code,
            potential=self.ctx.potential_yaml,
            active_set=self.ctx.active_set,
            metadata={'options': options, 'call_link_label': f'explore_iteration_{self.ctx.iteration:02d}'},
        )
        self.report(f'iteration {self.ctx.iteration}: launched PacemakerExplorationCalculation<{running.pk}>')
        return ToContext(exploration=running)

    def inspect_exploration(self):
        node = self.ctx.exploration
        if not node.is_finished_ok:
            cause = f'{node.process_label}<{node.pk}> [{node.exit_status}] {node.exit_message}'
            return self.exit_codes.ERROR_EXPLORATION_FAILED.format(iteration=self.ctx.iteration, cause=cause)
        summary = node.outputs.summary.get_dict()
        selected = node.outputs.selected if 'selected' in node.outputs else {}
        self._row().update(
            {
                'exploration': node.pk,
                'explored_steps': summary['explored_steps'],
                'fraction_above_gamma_lo': summary['fraction_above_gamma_lo'],
                'max_gamma': summary['max_gamma'],
                'stopped_at_gamma_hi': summary['stopped_at_gamma_hi'],
                'candidates': summary['candidates'],
                'selected': len(selected),
                'labelled': 0,
                'failed': 0,
            }
        )
        target = ConvergenceSettings.model_validate(self.inputs.convergence.get_dict()).fraction_above_gamma_lo
        fraction = summary['fraction_above_gamma_lo']
        self.report(
            f'iteration {self.ctx.iteration}: {summary["explored_steps"]} steps explored, '
            f'{fraction:.1%} above gamma_lo, '
            f'max gamma {summary["max_gamma"]}, {len(selected)} selected'
        )
        if fraction < target or not selected:
            self.ctx.converged = True
            self._end_row()
            self.report(
                f'converged: {fraction:.2%} of the steps above gamma_lo (target {target:.2%}), {len(selected)} selected'
            )
        self.ctx.selected = {label: selected[label] for label in sorted(selected)}

    def has_selection(self) -> bool:
        return not self.ctx.converged

    def label(self):
        """One labelling process per selected structure (submitted ones run concurrently)."""
        labeller = self._labeller()
        self.ctx.finished_labels = []
        self.ctx.labels = []
        for label, structure in self.ctx.selected.items():
            node = labeller.launch(self, structure, f'label_{self.ctx.iteration:02d}_{label}')
            if node.is_terminated:
                self.ctx.finished_labels.append(node)
            else:
                self.to_context(labels=append_(node))
        self.report(f'iteration {self.ctx.iteration}: labelling {len(self.ctx.selected)} structures ({labeller.name})')

    def inspect_labelling(self):
        """Tolerate failed labels up to ``max_failed_fraction``; collect the successful ones with their lineage."""
        nodes = self.ctx.finished_labels + list(self.ctx.get('labels', []))
        good = [node for node in nodes if node.is_finished_ok]
        failed = [node for node in nodes if not node.is_finished_ok]
        row = self._row()
        row.update({'labelled': len(good), 'failed': len(failed)})
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
        self.ctx.labelled.append(collected)
        if not self.ctx.dft_reference and labeller.is_dft:  # the first DFT labels set the settings for the rest
            self.ctx.dft_reference = [last_pw_calculation(node).pk for node in good]
        self.report(
            f'iteration {self.ctx.iteration}: {len(collected)} labelled structures in TrainingSetData<{collected.pk}>'
        )
        return None

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
            for kind, name in (('training', 'metrics'), ('exploration', 'summary')):
                if row.get(kind) is not None:
                    evidence[f'{name}_{row["iteration"]:02d}'] = orm.load_node(row[kind]).outputs[name]
        recorded = record_iterations(rows=orm.List(rows), **evidence)
        self.out('iterations', recorded['iterations'])
        self.out('plots', {'loop': recorded['loop']})
        self.report(
            f'finished after {self.ctx.iteration} iteration(s) (converged: {self.ctx.converged}); '
            f'{sum(len(node) for node in self.ctx.labelled)} structures labelled'
        )
