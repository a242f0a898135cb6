"""``PacemakerBaseWorkChain``: run a ``PacemakerCalculation`` and recover from what real runs meet.

Handlers (highest priority first):

* out of walltime (the scheduler's 120, mapped by the parser to 400, or the ``mlip_autopipe.walltime`` monitor's
  150): continue the fit from the last interim potential (``pacemaker -p``, or ``-ip`` with ladder fitting) for
  the iterations that remain, so no finished iteration is lost; an interim potential that the kill cut off is
  not used: the stopped job runs again as it was given; a job stopped before its first iteration (none after
  iteration 0 in ``metrics.txt``) made no progress: the same walltime would stop it again, so the workflow
  stops with ``ERROR_OUT_OF_WALLTIME_WITHOUT_PROGRESS`` (502) instead of running it again;
* out of memory (the scheduler's 110, or 430: killed without an error message, the OOM killer): retry with half
  the ``batch_size``, continuing from the interim potential when there is one;
* a failure that running again cannot mend (bad data or settings, a missing executable, a NaN loss, a crash):
  stop with ``ERROR_UNRECOVERABLE_FAILURE`` (310, aiida-quantumespresso's number for a known unrecoverable
  failure), whose message names the calculation's exit code and message.

Any other failure is left to aiida-core's ``on_unhandled_failure`` input (default: stop with 402).
The workflow's exit codes are its own (aiida-quantumespresso's discipline); it never returns a calculation's
exit status as its own.
"""

from __future__ import annotations

import io
import re

import yaml
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, calcfunction, process_handler, while_

from aiida_mlip_autopipe.calculations.monitors import WALLTIME_MESSAGE
from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation
from aiida_mlip_autopipe.calculations.settings import PacemakerSettings
from aiida_mlip_autopipe.parsers.pacemaker import parse_metrics_table, potential_summary

__all__ = ('PacemakerBaseWorkChain', 'extract_retrieved_file', 'failure_of', 'made_progress')

INTERIM = PacemakerCalculation.INTERIM_POTENTIAL
STOPPED_BY_MONITOR = PacemakerCalculation.exit_codes.STOPPED_BY_MONITOR.status
FUNCTIONS_IN_LOG = re.compile(r'Total number of functions: (\d+)')
# failures that the same inputs would meet again: bad data or settings, a missing tool, a NaN loss, a crash
UNRECOVERABLE = (
    'ERROR_OUTPUT_REFERENCE_ENERGY',
    'ERROR_DATASET_CONVERSION_FAILED',
    'ERROR_EXECUTABLE_MISSING',
    'ERROR_PACEMAKER_FAILED',
    'ERROR_NAN_LOSS',
    'ERROR_PACEMAKER_CRASHED',
)


def failure_of(node: orm.ProcessNode) -> dict:
    """The fields that name a failed process: label, pk, exit status, exit code name and message."""
    try:
        names = {code.status: label for label, code in node.process_class.exit_codes.items()}
    except (ValueError, AttributeError):  # a process class that can no longer be loaded
        names = {}
    return {
        'label': node.process_label,
        'pk': node.pk,
        'status': node.exit_status,
        'name': names.get(node.exit_status, 'unknown'),
        'message': node.exit_message or '',
    }


@calcfunction
def extract_retrieved_file(retrieved: orm.FolderData, filename: orm.Str) -> orm.SinglefileData:
    """Take one file (e.g. the last interim potential of a stopped job) out of a job's retrieved files."""
    content = retrieved.base.repository.get_object_content(filename.value, mode='rb')
    return orm.SinglefileData(io.BytesIO(content), filename=filename.value)


def interim_problem(retrieved: orm.FolderData) -> str | None:
    """Why the retrieved interim potential cannot be continued, or ``None``.

    A kill (Slurm's time limit, the monitor, the OOM killer) can land while pacemaker rewrites the file: it is then
    empty, or cut off after some of its functions (checked against the count pacemaker logs).
    """
    content = retrieved.base.repository.get_object_content(INTERIM, mode='r')
    try:
        functions = potential_summary(content)['num_functions']
    except (yaml.YAMLError, AttributeError, TypeError, ValueError) as exception:
        return f'{INTERIM} is not a complete potential ({len(content)} bytes; {type(exception).__name__})'
    names = retrieved.base.repository.list_object_names()
    log_name = PacemakerCalculation.LOG
    log = retrieved.base.repository.get_object_content(log_name, mode='r') if log_name in names else ''
    logged = FUNCTIONS_IN_LOG.findall(log)
    if not functions or (logged and functions != int(logged[-1])):
        expected = f' of the {logged[-1]}' if logged else ''
        return f'{INTERIM} holds {functions}{expected} functions ({len(content)} bytes): it was cut off by the stop'
    return None


def iterations_done(retrieved: orm.FolderData) -> int:
    """The last iteration recorded in the retrieved ``metrics.txt`` (0 when there is none)."""
    try:
        metrics = retrieved.base.repository.get_object_content(PacemakerCalculation.METRICS, mode='r')
        table = parse_metrics_table(metrics)
    except (FileNotFoundError, OSError, ValueError):
        return 0
    return int(table['iter_num'][-1]) if len(table.get('iter_num', [])) else 0


def made_progress(node: orm.CalcJobNode) -> bool:
    """Whether a stopped job finished an iteration of the fit (iteration 1 or later in its ``metrics.txt``).

    pacemaker logs iteration 0 (the starting loss) before any step: a job stopped before iteration 1 was stopped
    during start-up, data loading or the first step, and a continuation would start from where it started.
    """
    retrieved = node.outputs.retrieved if 'retrieved' in node.outputs else None
    return retrieved is not None and iterations_done(retrieved) > 0


class PacemakerBaseWorkChain(BaseRestartWorkChain):
    """Run a ``PacemakerCalculation`` (inputs under the ``pacemaker`` namespace) with restart handlers."""

    _process_class = PacemakerCalculation

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(PacemakerCalculation, namespace='pacemaker')
        spec.expose_outputs(PacemakerCalculation)
        # aiida-core types outline steps as ``Callable[[WorkChain], ...]``; BaseRestartWorkChain's own steps take
        # ``BaseRestartWorkChain`` (a narrower ``self``), which mypy rejects: aiida-core's typing, not an error here
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(  # type: ignore[arg-type]
                cls.run_process,  # type: ignore[arg-type]
                cls.inspect_process,  # type: ignore[arg-type]
            ),
            cls.results,
        )
        spec.exit_code(
            310,
            'ERROR_UNRECOVERABLE_FAILURE',
            message='{label}<{pk}> failed with exit code {status} ({name}): {message}',
        )
        spec.exit_code(
            501,
            'ERROR_OUT_OF_MEMORY_AT_MINIMUM_BATCH',
            message='pacemaker was killed (out of memory) even with batch_size 1',
        )
        spec.exit_code(
            502,
            'ERROR_OUT_OF_WALLTIME_WITHOUT_PROGRESS',
            message='{label}<{pk}> ran out of walltime before its first iteration (no progress to continue from): '
            'give it a longer walltime',
        )

    def setup(self):
        """Take the calculation's inputs from the ``pacemaker`` namespace."""
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(PacemakerCalculation, 'pacemaker'))

    # -- helpers --------------------------------------------------------------------------------------------

    def _settings(self) -> dict:
        return self.ctx.inputs.settings.get_dict() if 'settings' in self.ctx.inputs else {}

    def _continue_from_interim(self, node: orm.CalcJobNode, settings: dict) -> str:
        """Point the next run at the last interim potential, for the iterations that remain."""
        retrieved = node.outputs.retrieved if 'retrieved' in node.outputs else None
        if retrieved is None or INTERIM not in retrieved.base.repository.list_object_names():
            return 'no interim potential was written: restarting from the start'
        problem = interim_problem(retrieved)
        if problem:
            return f'{problem}; running the stopped job again as it was given'
        done = iterations_done(retrieved)
        maxiter = PacemakerSettings.model_validate(settings).section_fit.effective_maxiter
        remaining = max(1, maxiter - done)
        settings.setdefault('fit', {})['maxiter'] = remaining
        self.ctx.inputs.initial_potential = extract_retrieved_file(retrieved, orm.Str(INTERIM))
        return f'continuing from {INTERIM} after {done} iterations, {remaining} to go'

    # -- handlers ---------------------------------------------------------------------------------------------

    @process_handler(
        priority=600,
        exit_codes=[
            PacemakerCalculation.exit_codes.ERROR_OUT_OF_WALLTIME,
            PacemakerCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME,
            PacemakerCalculation.exit_codes.STOPPED_BY_MONITOR,
        ],
    )
    def handle_out_of_walltime(self, node: orm.CalcJobNode) -> ProcessHandlerReport | None:
        """Out of walltime: continue the fit from the last interim potential."""
        if node.exit_status == STOPPED_BY_MONITOR and not (node.exit_message or '').startswith(WALLTIME_MESSAGE):
            return None
        if not made_progress(node):
            self.report(f'{node.process_label}<{node.pk}> ran out of walltime before its first iteration: stopping')
            return ProcessHandlerReport(
                True, self.exit_codes.ERROR_OUT_OF_WALLTIME_WITHOUT_PROGRESS.format(**failure_of(node))
            )
        settings = self._settings()
        action = self._continue_from_interim(node, settings)
        self.ctx.inputs.settings = orm.Dict(settings)
        self.report(f'{node.process_label}<{node.pk}> ran out of walltime; {action}')
        return ProcessHandlerReport(True)

    @process_handler(
        priority=500,
        exit_codes=[
            PacemakerCalculation.exit_codes.ERROR_PACEMAKER_KILLED,
            PacemakerCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_MEMORY,
        ],
    )
    def handle_out_of_memory(self, node: orm.CalcJobNode) -> ProcessHandlerReport | None:
        """Out of memory (the scheduler's 110, or killed without an error message): halve ``backend.batch_size``."""
        settings = self._settings()
        batch_size = PacemakerSettings.model_validate(settings).section_backend.effective_batch_size
        if batch_size <= 1:
            return ProcessHandlerReport(True, self.exit_codes.ERROR_OUT_OF_MEMORY_AT_MINIMUM_BATCH)
        settings.setdefault('backend', {})['batch_size'] = max(1, batch_size // 2)
        action = self._continue_from_interim(node, settings)
        self.ctx.inputs.settings = orm.Dict(settings)
        self.report(
            f'{node.process_label}<{node.pk}> ran out of memory: batch_size {batch_size} -> '
            f'{settings["backend"]["batch_size"]}; {action}'
        )
        return ProcessHandlerReport(True)

    @process_handler(priority=100, exit_codes=[PacemakerCalculation.exit_codes[name] for name in UNRECOVERABLE])
    def handle_unrecoverable_failure(self, node: orm.CalcJobNode) -> ProcessHandlerReport:
        """A failure that running again cannot mend: stop, naming the calculation's exit code and message."""
        self.report(f'{node.process_label}<{node.pk}> failed [{node.exit_status}]: {node.exit_message}')
        return ProcessHandlerReport(True, self.exit_codes.ERROR_UNRECOVERABLE_FAILURE.format(**failure_of(node)))
