"""``PacemakerCalculation``: fit an ACE potential with pacemaker, then convert it to ``.yace``.

The job, on whichever computer the ``pacemaker`` code lives:

1. converts the stable-format dataset(s) into pacemaker's gzip-pickled DataFrame with pacemaker's own Python
   interpreter (so the pickle matches the pandas that reads it);
2. runs ``pacemaker input.yaml`` (``-p``/``-ip initial_potential.yaml`` when continuing a fit);
3. runs ``pace_yaml2yace -o output_potential.yace output_potential.yaml``;
4. turns the prediction pickles into stable ``.npz`` files (for parity plots).

The sibling tools (``pace_yaml2yace``, the interpreter) are found in the directory of the code's executable.
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Mapping
from importlib import resources
from pathlib import PurePosixPath
from typing import Any

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob
from aiida.engine.processes.calcjobs.calcjob import validate_calc_job
from pydantic import ValidationError

from aiida_mlip_autopipe.baseline.delta import baseline_of
from aiida_mlip_autopipe.baseline.zbl import second_zbl_core
from aiida_mlip_autopipe.calculations.files import PacemakerFiles, settings_record
from aiida_mlip_autopipe.calculations.input_file import InputFileError, load_input, render_input
from aiida_mlip_autopipe.calculations.settings import (
    PacemakerSettings,
    first_error_location,
    ignored_keys,
    settings_validator,
)
from aiida_mlip_autopipe.data.training_set import TrainingSetData
from aiida_mlip_autopipe.potentials.bbasis import BBasisError, read_bbasis
from aiida_mlip_autopipe.potentials.reference_energy import (
    ReferenceEnergyError,
    ReferencePlan,
    plan_reference_energy,
    potential_header,
)

__all__ = ('PacemakerCalculation',)

THREAD_VARIABLES = ('OMP_NUM_THREADS', 'TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS')


class PacemakerCalculation(PacemakerFiles, CalcJob):
    """Train an ACE potential with pacemaker (python-ace) on a ``TrainingSetData``."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('training_set', valid_type=TrainingSetData, help='Labelled structures to fit.')
        spec.input(
            'test_set',
            valid_type=TrainingSetData,
            required=False,
            help='Held-out structures; without it `data.test_size` in the settings (if any) splits the training set.',
        )
        spec.input(
            'settings',
            valid_type=orm.Dict,
            required=False,
            validator=validate_settings,
            help="Pacemaker settings, nested as pacemaker's input.yaml (see PacemakerSettings); all optional.",
        )
        spec.input(
            'initial_potential',
            valid_type=orm.SinglefileData,
            required=False,
            help='A B-basis YAML potential (e.g. a previous `potential_yaml`) to continue from. A .yace is refused.',
        )
        spec.input(
            'template',
            valid_type=orm.SinglefileData,
            required=False,
            help='A Jinja2 template for input.yaml replacing the shipped one.',
        )
        spec.inputs.validator = validate_inputs
        options = spec.inputs['metadata']['options']
        # threads: the computer's default mpiprocs per machine. A fresh dict each time: aiida-core's validation
        # completes the resources in place, which would otherwise change the default of every later calculation
        options['resources'].default = lambda: {'num_machines': 1}
        options['parser_name'].default = 'mlip_autopipe.pacemaker'
        options['withmpi'].default = False
        options['input_filename'].default = cls.INPUT_FILE
        options['output_filename'].default = cls.STDOUT

        spec.output('potential', valid_type=orm.SinglefileData, help='The fitted potential (.yace, C-tilde basis).')
        spec.output('potential_yaml', valid_type=orm.SinglefileData, help='The fitted B-basis YAML (to continue).')
        spec.output('metrics', valid_type=orm.Dict, help='Final RMSEs (meV/atom, meV/Å), loss, iterations, timing.')
        spec.output('learning_curve', valid_type=orm.ArrayData, help='Per-iteration train/test loss and RMSEs.')
        spec.output('train_predictions', valid_type=orm.ArrayData, required=False, help='Reference vs predicted E, F.')
        spec.output('test_predictions', valid_type=orm.ArrayData, required=False, help='Reference vs predicted E, F.')
        spec.default_output_node = 'metrics'

        spec.exit_code(
            301,
            'ERROR_OUTPUT_LOG_MISSING',
            invalidates_cache=True,
            message='pacemaker wrote no log.txt: it did not start. Last error line: {line}',
        )
        spec.exit_code(
            302,
            'ERROR_OUTPUT_LOG_UNREADABLE',
            invalidates_cache=True,
            message='the pacemaker log or metrics could not be read: {line}',
        )
        spec.exit_code(
            303,
            'ERROR_OUTPUT_POTENTIAL_MISSING',
            invalidates_cache=True,
            message='pacemaker exited without writing output_potential.yaml. Last error line: {line}',
        )
        spec.exit_code(
            304,
            'ERROR_OUTPUT_YACE_MISSING',
            invalidates_cache=True,
            message='pace_yaml2yace did not write output_potential.yace. Last error line: {line}',
        )
        spec.exit_code(
            305,
            'ERROR_OUTPUT_METRICS_MISSING',
            invalidates_cache=True,
            message='pacemaker wrote no metrics.txt, so the fit cannot be assessed.',
        )
        spec.exit_code(
            306,
            'ERROR_OUTPUT_REFERENCE_ENERGY',
            invalidates_cache=True,
            message='the reference energy of the fit cannot be written into the .yace: {message}',
        )
        spec.exit_code(
            307,
            'ERROR_STATUS_MISSING',
            invalidates_cache=True,
            message='the job left no pacemaker exit status: it was stopped before pacemaker finished.',
        )
        spec.exit_code(
            400,
            'ERROR_OUT_OF_WALLTIME',
            message='the job ran out of walltime; the last interim potential is in `retrieved`.',
        )
        spec.exit_code(
            401,
            'ERROR_DATASET_CONVERSION_FAILED',
            message="converting the dataset with pacemaker's Python interpreter failed: {line}",
        )
        spec.exit_code(
            402,
            'ERROR_EXECUTABLE_MISSING',
            message='the pacemaker executable {path} does not exist or is not executable on the computer',
        )
        spec.exit_code(410, 'ERROR_PACEMAKER_FAILED', message='pacemaker exited with status {status}: {line}')
        spec.exit_code(420, 'ERROR_NAN_LOSS', message='the loss became NaN during the fit (iteration {iteration}).')
        spec.exit_code(
            430,
            'ERROR_PACEMAKER_KILLED',
            message='pacemaker was killed by signal {signal} without an error message (most likely out of memory).',
        )
        spec.exit_code(
            431,
            'ERROR_PACEMAKER_CRASHED',
            message='pacemaker crashed with signal {signal} ({name}); not a memory problem, so it is not retried.',
        )

    # -- helpers ------------------------------------------------------------------------------------------

    @classmethod
    def data_elements(cls, inputs: Mapping[str, Any]) -> list[str]:
        """The elements of the training (and test) data."""
        elements = set(inputs['training_set'].base.attributes.get('elements', []))
        if 'test_set' in inputs:
            elements |= set(inputs['test_set'].base.attributes.get('elements', []))
        return sorted(elements)

    @classmethod
    def completed_settings(
        cls, inputs: Mapping[str, Any], elements: list[str] | None = None
    ) -> tuple[PacemakerSettings, dict[str, Any], list[str]]:
        """Return ``(settings, filled, dropped)``: the validated settings completed with what pacemaker requires and
        the user left out, what was filled, and the messages for keys pacemaker ignores (dropped).

        ``elements``: the data's elements when ``inputs`` holds no data yet (a workflow checking before it builds it).
        """
        raw = inputs['settings'].get_dict() if 'settings' in inputs else {}
        settings, filled = PacemakerSettings.model_validate(raw).complete(elements or cls.data_elements(inputs))
        return settings, filled, ignored_keys(raw)

    @classmethod
    def resolve_settings(cls, inputs: Mapping[str, Any], elements: list[str] | None = None) -> PacemakerSettings:
        """Return the validated settings completed with what pacemaker requires (e.g. the data's elements)."""
        return cls.completed_settings(inputs, elements)[0]

    @classmethod
    def input_document(
        cls, inputs: Mapping[str, Any], elements: list[str] | None = None, has_test_set: bool | None = None
    ) -> tuple[dict[str, Any], str]:
        """Return ``(document, text)``: what ``input.yaml`` must say, and the text rendered from the template."""
        settings = cls.resolve_settings(inputs, elements)
        has_test_set = 'test_set' in inputs if has_test_set is None else has_test_set
        document = settings.to_pacemaker_input(cls.TRAINING_PICKLE, cls.TEST_PICKLE if has_test_set else None)
        plan = reference_plan(inputs, settings, has_test_set)
        if plan is not None and plan.value is not None:  # from the training data only, written explicitly
            document['data']['reference_energy'] = plan.value
        template = inputs['template'].get_content() if 'template' in inputs else None
        text = render_input(document, template)
        rendered = load_input(text)
        if template is None:
            if rendered != document:
                raise InputFileError('the rendered input.yaml does not parse back to the settings')
        else:
            check_user_rendering(rendered, document)
        return document, text

    @classmethod
    def potential_flag(cls, read: dict[str, Any]) -> str:
        """The command-line flag that hands the initial potential to pacemaker, given the ``input.yaml`` it reads:
        ``-ip`` (``potential.initial_potential``, grown by the ladder) with a ``fit.ladder_step``, else ``-p`` (the
        file replaces the whole ``potential`` section)."""
        fit = read.get('fit')
        return '-ip' if isinstance(fit, dict) and 'ladder_step' in fit else '-p'

    @classmethod
    def settings_read(cls, text: str, initial_potential: bool = False) -> dict[str, Any]:
        """What pacemaker reads: the ``input.yaml`` ``text`` parsed with its own reader, with the command line applied
        as ``pacemaker`` applies it (``-p FILE`` replaces the ``potential`` section, ``-ip FILE`` sets
        ``potential.initial_potential``). This, not the ``settings`` input, is the record of the settings used."""
        return cls.with_command_line(load_input(text), initial_potential)

    @classmethod
    def with_command_line(cls, read: dict[str, Any], initial_potential: bool = False) -> dict[str, Any]:
        """A copy of the parsed ``input.yaml`` ``read`` with pacemaker's command line applied (``settings_read``)."""
        read = copy.deepcopy(read)
        if initial_potential:
            if cls.potential_flag(read) == '-p':
                read['potential'] = cls.INITIAL_POTENTIAL
            elif isinstance(read['potential'], dict):
                read['potential']['initial_potential'] = cls.INITIAL_POTENTIAL
        return read

    def prepare_for_submission(self, folder):
        """Write ``input.yaml`` and the job's helper script; copy the datasets; define the job's commands."""
        document, text = self.input_document(self.inputs)
        folder.create_file_from_filelike(_text_stream(text), self.INPUT_FILE, mode='w')
        settings, filled, dropped = self.completed_settings(self.inputs)
        read = load_input(text)
        plan = reference_plan(self.inputs, settings, rendered=read)
        assert plan is not None  # None only without a training_set, a required input
        self.report(f'reference energy ({plan.source}): {plan.reason}')
        if filled:
            self.report(f'settings filled by the plugin (pacemaker requires them): {", ".join(filled)}')
        for message in dropped:
            self.report(f'settings: {message}')
        differences = settings_differences(document, read)
        if differences:
            self.report(
                'the template writes input.yaml differently from the settings; pacemaker reads (and metrics.'
                f'settings_used records) the file: {"; ".join(differences)}'
            )
        used = self.with_command_line(read, 'initial_potential' in self.inputs)  # input.yaml is parsed once
        record = settings_record(used, filled, dropped, plan.record())
        folder.create_file_from_filelike(_text_stream(record), self.SETTINGS_RECORD, mode='w')
        script = resources.files('aiida_mlip_autopipe.jobscripts').joinpath('pacemaker_io.py').read_text('utf-8')
        folder.create_file_from_filelike(_text_stream(script), self.IO_SCRIPT, mode='w')

        local_copy_list = [(self.inputs.training_set.uuid, TrainingSetData.FILENAME, self.TRAINING_NPZ)]
        if 'test_set' in self.inputs:
            local_copy_list.append((self.inputs.test_set.uuid, TrainingSetData.FILENAME, self.TEST_NPZ))
        cmdline = [self.INPUT_FILE, '-o', self.OUTPUT_YAML, '-l', self.LOG]
        if 'initial_potential' in self.inputs:
            potential = self.inputs.initial_potential
            local_copy_list.append((potential.uuid, potential.filename, self.INITIAL_POTENTIAL))
            cmdline += [self.potential_flag(read), self.INITIAL_POTENTIAL]

        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = cmdline
        codeinfo.stdout_name = self.STDOUT
        codeinfo.stderr_name = self.STDERR
        codeinfo.withmpi = False

        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = local_copy_list
        calcinfo.retrieve_list = list(self.RETRIEVE)
        calcinfo.prepend_text = self._prepend_text()
        calcinfo.append_text = self._append_text()
        return calcinfo

    def _threads(self) -> int:
        """Pacemaker's threads: the job's processes per machine (given, or the computer's default) x cores each."""
        resources = dict(self.node.get_option('resources') or {})
        computer = self.inputs.code.computer
        computer.get_scheduler().preprocess_resources(resources, computer.get_default_mpiprocs_per_machine())
        per_machine = resources.get('num_mpiprocs_per_machine') or resources.get('tot_num_mpiprocs') or 1
        return max(1, int(per_machine) * int(resources.get('num_cores_per_mpiproc') or 1))

    def _dataset_pairs(self) -> list[str]:
        """``source target`` pairs for one ``to-dataframe`` call (one interpreter start for both data sets)."""
        pairs = [self.TRAINING_NPZ, self.TRAINING_PICKLE]
        if 'test_set' in self.inputs:
            pairs += [self.TEST_NPZ, self.TEST_PICKLE]
        return pairs

    def _tool_paths(self) -> tuple[str, str]:
        executable = PurePosixPath(str(self.inputs.code.get_executable()))
        return str(executable), str(executable.parent)

    def _prepend_text(self) -> str:
        executable, bin_dir = self._tool_paths()
        threads = self._threads()
        lines = [f"date +%s > {self.JOB_STARTED}  # the start on the job machine's clock (walltime monitor)"]
        lines += [f'export {name}="${{{name}:-{threads}}}"' for name in THREAD_VARIABLES]
        # the threads pacemaker ran with, as the job saw them: TensorFlow's sums depend on them (fidelity)
        lines.append(f'echo {" ".join(f"{name}=${name}" for name in THREAD_VARIABLES)} > {self.THREADS}')
        lines += [
            f'if [ ! -x {shlex.quote(executable)} ]; then',
            f'  echo {shlex.quote(executable)} > {self.MISSING_EXECUTABLE}',
            '  exit 0',
            'fi',
            f'PACEMAKER_BIN_DIR={shlex.quote(bin_dir)}',
            '# the Python interpreter of the pacemaker installation: its shebang, else python3 beside it',
            f'PACEMAKER_PYTHON=$(head -n 1 {shlex.quote(executable)} | sed -n "s/^#![[:space:]]*//p")',
            'case "$PACEMAKER_PYTHON" in *python*) ;; *) PACEMAKER_PYTHON="$PACEMAKER_BIN_DIR/python3" ;; esac',
            f'"$PACEMAKER_PYTHON" {self.IO_SCRIPT} to-dataframe {" ".join(self._dataset_pairs())} '
            f'> {self.PREPARE_LOG} 2>&1',
            'PREPARE_STATUS=$?',
            f'echo "$PREPARE_STATUS" > {self.PREPARE_STATUS}',
            'if [ "$PREPARE_STATUS" -ne 0 ]; then exit 0; fi',
        ]
        return '\n'.join(lines)

    def _append_text(self) -> str:
        return '\n'.join(
            [
                f'echo "$?" > {self.PACEMAKER_STATUS}',
                f'if [ -f {self.OUTPUT_YAML} ]; then',
                f'  "$PACEMAKER_BIN_DIR/pace_yaml2yace" -o {self.OUTPUT_YACE} {self.OUTPUT_YAML} '
                f'> {self.YACE_LOG} 2>&1',
                f'  echo "$?" > {self.YACE_STATUS}',
                'fi',
                'PREDICTIONS=()',
                'for split in train test; do',
                '  if [ -f "${split}_pred.pckl.gzip" ]; then',
                '    PREDICTIONS+=("${split}_pred.pckl.gzip" "${split}_predictions.npz")',
                '  fi',
                'done',
                'if [ "${#PREDICTIONS[@]}" -gt 0 ]; then',
                f'  "$PACEMAKER_PYTHON" {self.IO_SCRIPT} predictions "${{PREDICTIONS[@]}}" '
                f'> {self.PREDICTIONS_LOG} 2>&1',
                'fi',
            ]
        )


def _text_stream(text: str):
    import io

    return io.StringIO(text)


def settings_differences(expected: Any, read: Any, path: str = '') -> list[str]:
    """``key: settings X, file Y`` for each place where the ``input.yaml`` pacemaker reads differs from the settings."""
    if isinstance(expected, dict) and isinstance(read, dict):
        result = []
        for key in list(expected) + [key for key in read if key not in expected]:
            where = f'{path}.{key}' if path else str(key)
            if key not in read:
                result.append(f'{where}: settings {expected[key]!r}, file absent (pacemaker default)')
            elif key not in expected:
                result.append(f'{where}: not in the settings, file {read[key]!r}')
            else:
                result += settings_differences(expected[key], read[key], where)
        return result
    if expected != read or type(expected) is not type(read):
        return [f'{path}: settings {expected!r}, file {read!r}']
    return []


def check_user_rendering(rendered: dict[str, Any], document: dict[str, Any]) -> None:
    """A user's template must write the plugin's dataset files and pass the same validation as settings."""
    data = rendered.get('data') or {}
    for key in ('filename', 'test_filename', 'reference_energy'):
        if key == 'reference_energy' and key not in document['data']:
            continue  # the user's own (or none): pacemaker reads what the template wrote
        if data.get(key) != document['data'].get(key):
            raise InputFileError(
                f'the template writes data.{key}={data.get(key)!r}; it must be {document["data"].get(key)!r} '
                '(use `{{ data | yaml }}` or `{{ data.filename | yaml }}`)'
            )
    try:
        settings = PacemakerSettings.from_pacemaker_input(rendered)
    except ValidationError as exception:
        raise InputFileError(
            f'the input.yaml rendered from the template is invalid: {first_error_location(exception)}'
        ) from exception
    elements = settings.section_potential.elements
    if sorted(elements or []) != sorted(document['potential']['elements']):
        raise InputFileError(
            f'the template writes potential.elements={elements}, but the data has {document["potential"]["elements"]}'
        )


#: Validate the ``settings`` Dict against :class:`PacemakerSettings`.
validate_settings = settings_validator(PacemakerSettings, 'settings')


def thread_count_missing(computer: orm.Computer, resources: dict[str, Any]) -> bool:
    """Whether neither ``resources`` nor ``computer``'s default say how many processes per machine (threads) to use."""
    if {'num_mpiprocs_per_machine', 'tot_num_mpiprocs'} & set(resources):
        return False
    if computer.get_default_mpiprocs_per_machine() is not None:
        return False
    return computer.get_scheduler().job_resource_class.accepts_default_mpiprocs_per_machine()


def threads_unknown(inputs: dict[str, Any]) -> str | None:
    """A message when neither the resources nor the computer say how many threads (processes per machine) to use."""
    computer = getattr(inputs.get('code'), 'computer', None)
    resources = ((inputs.get('metadata') or {}).get('options') or {}).get('resources') or {}
    if computer is None or not thread_count_missing(computer, resources):
        return None
    return (
        f'how many threads should pacemaker use? give metadata.options.resources.num_mpiprocs_per_machine, or set '
        f'a default on computer {computer.label!r} (`verdi computer setup --mpiprocs-per-machine N`, or '
        '`computer.set_default_mpiprocs_per_machine(N)`)'
    )


def initial_potential_problem(inputs: dict[str, Any]) -> str | None:
    """A message when the ``initial_potential`` is not a B-basis YAML that pacemaker can continue."""
    if 'initial_potential' not in inputs:
        return None
    name = inputs['initial_potential'].filename
    if name.endswith('.yace'):
        return (
            f'initial_potential {name!r} is a .yace (C-tilde basis), which pacemaker cannot continue: give the '
            'B-basis YAML, e.g. the `potential_yaml` output of the previous fit'
        )
    if not name.endswith(('.yaml', '.yml')):
        return f'initial_potential {name!r} must be a B-basis YAML file (.yaml)'
    return bbasis_problem(inputs['initial_potential'])


def bbasis_problem(node: orm.SinglefileData) -> str | None:
    """A one-line message when ``node`` is not a B-basis potential YAML (``global`` and ``species`` blocks).

    Pacemaker's loader (``BBasisConfiguration``) fails on anything else with a bare "bad conversion" after start-up.
    """
    with node.open(mode='rb') as handle:
        content = handle.read()
    try:
        if read_bbasis(content).has_global:
            return None
        reason = 'is not a B-basis potential (it has no global block)'
    except BBasisError as exception:
        reason = str(exception).removeprefix('it ')
    if reason.startswith('is not readable YAML'):
        return f'initial_potential {node.filename!r} {reason}'
    return f'initial_potential {node.filename!r} {reason}: give the `potential_yaml` output of a fit'


def initial_potential_header(inputs: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]] | None:
    """``(elements, metadata)`` of the ``initial_potential`` YAML (``None`` without one or for a non-YAML file)."""
    potential = inputs['initial_potential'] if 'initial_potential' in inputs else None
    if potential is None or not potential.filename.endswith(('.yaml', '.yml')):
        return None
    return potential_header(potential.get_content())


def initial_potential_mismatch(inputs: dict[str, Any], elements: list[str]) -> str | None:
    """A message when the ``initial_potential`` does not describe the data's ``elements`` (pacemaker would continue
    it anyway: its elements win, and the fitted potential cannot evaluate the data it was fitted on)."""
    try:
        header = initial_potential_header(inputs)
    except ReferenceEnergyError:  # not a B-basis potential at all: the format check's concern, not this one's
        return None
    if header is None:
        return None
    potential_elements = sorted(header[0])
    if potential_elements != sorted(elements):
        return (
            f'initial_potential {inputs["initial_potential"].filename!r} has the elements {potential_elements}, the '
            f"data {sorted(elements)}: continue a potential of exactly the data's elements, or fit from scratch"
        )
    return None


def reference_plan(
    inputs: Mapping[str, Any],
    settings: PacemakerSettings | None = None,
    has_test_set: bool | None = None,
    rendered: dict[str, Any] | None = None,
) -> ReferencePlan | None:
    """The reference energy the fit uses and why, decided on the training set only (``None`` without one).

    ``rendered``: the ``input.yaml`` as written; a ``data.reference_energy`` that a user's template wrote itself is
    what pacemaker reads, and is reported as such.
    """
    if 'training_set' not in inputs:
        return None
    training_set = inputs['training_set']
    settings = settings if settings is not None else PacemakerCalculation.resolve_settings(inputs)
    try:
        header = initial_potential_header(inputs)
    except ReferenceEnergyError:
        header = None
    given = settings.section_data.reference_energy
    plan = plan_reference_energy(
        given,
        header[1] if header else None,
        training_set.get_arrays,
        'test_set' in inputs if has_test_set is None else has_test_set,
    )
    written = ((rendered or {}).get('data') or {}).get('reference_energy')
    if rendered is not None and written != (plan.value if plan.value is not None else given):
        return ReferencePlan(None, 'template', f'data.reference_energy={written!r} written by the template')
    return plan


def settings_problem(inputs: dict[str, Any], elements: list[str], has_test_set: bool) -> str | None:
    """A message when the settings (and template) do not make a valid ``input.yaml`` for data of ``elements``.

    The one check of settings against data: the calculation runs it on its inputs, the training workflow on the
    data it found, before it stores anything.
    """
    message = initial_potential_mismatch(inputs, elements)
    if message:
        return message
    try:
        settings = PacemakerCalculation.resolve_settings(inputs, elements)
    except (ValidationError, ValueError) as exception:
        return f'invalid settings: {first_error_location(exception)}'
    potential = settings.potential
    assert potential is not None and potential.elements is not None  # filled by PacemakerSettings.complete
    if set(potential.elements) != set(elements):
        return (
            f'potential.elements={potential.elements} does not match the elements of the data '
            f'{sorted(elements)}: give exactly the data elements, or omit potential.elements to take them'
        )
    try:
        PacemakerCalculation.input_document(inputs, elements, has_test_set)
    except InputFileError as exception:
        return str(exception)
    return None


def validate_inputs(inputs: dict[str, Any], ctx) -> str | None:
    """aiida-core's own checks (code, computer, resources), then the initial potential, data, settings, template."""
    message = threads_unknown(inputs) or validate_calc_job(inputs, ctx) or initial_potential_problem(inputs)
    if message or 'training_set' not in inputs:
        return message
    training_set = inputs['training_set']
    if len(training_set) == 0:
        return 'the training_set is empty: pacemaker needs at least one structure'
    if not training_set.base.attributes.get('has_forces', False):
        missing = training_set.base.attributes.get('num_structures_without_forces')
        return f'{missing} structure(s) of the training_set have no forces; pacemaker fits forces on every structure'
    if 'test_set' in inputs and not inputs['test_set'].base.attributes.get('has_forces', False):
        return 'some structures of the test_set have no forces'
    message = settings_problem(inputs, PacemakerCalculation.data_elements(inputs), 'test_set' in inputs)
    if message:
        return message
    baselines = {baseline_of(inputs[name]) for name in ('training_set', 'test_set') if name in inputs}
    if len(baselines) > 1:
        return 'the training_set and test_set must both carry the same ZBL baseline (delta learning), or neither'
    message = second_zbl_core(inputs['settings'].get_dict() if 'settings' in inputs else {})
    if baseline_of(training_set) is not None and message:
        return f'the training_set is delta-learned on a ZBL baseline: {message}'
    settings = PacemakerCalculation.resolve_settings(inputs)
    test_size = settings.section_data.test_size
    if 'test_set' in inputs and test_size is not None:
        return 'give either the test_set input or settings data.test_size, not both'
    if test_size is not None:
        count = len(training_set)
        count_test = test_size if test_size >= 1 else int(count * test_size)
        if count_test < 1 or count_test >= count:
            return (
                f'data.test_size={test_size} takes {count_test} test structure(s) of the {count} in the training_set: '
                'pacemaker needs at least one training and one test structure'
            )
    return None
