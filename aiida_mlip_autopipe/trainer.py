"""``PacemakerTrainer``: the seed's one-call façade. ASE database in, path of a ``.yace`` potential out.

Every step goes through AiiDA (nothing runs behind its back): the database is imported with provenance, the
``PacemakerTrainingWorkChain`` trains on the loaded profile, and the potential is exported from its node.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import BeforeValidator, Field, FilePath, StrictInt, model_validator

from aiida_mlip_autopipe.baseline.zbl import ZBLBaseline, second_zbl_core
from aiida_mlip_autopipe.calculations.settings import (
    LossWeights,
    PacemakerSettings,
    PositiveFloat,
    PositiveInt,
    StrictModel,
)
from aiida_mlip_autopipe.workflows.defaults import DEFAULT_MIN_STRUCTURES, DEFAULT_SPLIT_SEED, DEFAULT_TEST_FRACTION

__all__ = ('PacemakerTrainer', 'TrainingConfig', 'TrainingError')

#: A path on the computer that runs the job (not necessarily this machine): kept as given, never resolved here.
ExecutablePath = Annotated[
    str,
    BeforeValidator(lambda value: os.fspath(value) if isinstance(value, os.PathLike) else value),
    Field(min_length=1),
]


class TrainingConfig(StrictModel):
    """The seed's configuration of one training, for :class:`~aiida_mlip_autopipe.trainer.PacemakerTrainer`.

    ``settings`` has the nesting of :class:`~.calculations.settings.PacemakerSettings`. ``loss_weights`` is mapped
    onto its ``fit.loss.kappa``: given explicitly together with a ``kappa`` in ``settings`` it is an error; left at
    its default (energy 0.7, forces 0.3) it applies only where ``settings`` has no ``kappa``.
    """

    pacemaker_executable: ExecutablePath = Field(
        description='pacemaker on the computer that runs it: a path there (checked through its transport)'
    )
    data_source_db: Path
    """The ASE database to import and train on."""
    template_file: FilePath | None = None
    """A Jinja2 template for input.yaml replacing the shipped one."""
    delta_learning: bool = True
    """Fit DFT minus the ZBL baseline; the potential carries the baseline."""
    zbl_inner: PositiveFloat = Field(
        default=ZBLBaseline.inner, description='ZBL baseline: LAMMPS pair_style zbl inner cutoff (Å)'
    )
    zbl_outer: PositiveFloat = Field(
        default=ZBLBaseline.outer, description='ZBL baseline: LAMMPS pair_style zbl outer cutoff (Å)'
    )
    loss_weights: LossWeights = Field(default_factory=LossWeights)
    """Energy/force weights (see ``LossWeights``)."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """Pacemaker settings, nested as input.yaml (see ``PacemakerSettings``)."""
    selection: str | None = Field(default=None, description="ASE db query string, e.g. 'config_type=bulk'")
    on_missing_forces: Literal['refuse', 'skip'] = 'refuse'
    """Rows without forces: ``refuse`` or ``skip`` (counted)."""
    on_invalid: Literal['refuse', 'skip'] = 'refuse'
    """Invalid rows (NaN, no energy, atoms too close): ``refuse`` or ``skip`` (counted)."""
    min_structures: PositiveInt = DEFAULT_MIN_STRUCTURES
    """Refuse to train on fewer structures."""
    test_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = DEFAULT_TEST_FRACTION
    """Fraction held out as the test set."""
    split_seed: StrictInt = DEFAULT_SPLIT_SEED
    """Seed of the train/test split."""
    output_dir: Path = Path('.')
    """Where the .yace is written."""
    potential_filename: Annotated[str, Field(pattern=r'^[A-Za-z0-9_.\-]+\.yace$')] | None = None
    """Name of the .yace (default: elements and pk)."""
    computer: str = 'localhost'
    """The AiiDA computer that runs pacemaker."""
    num_threads: PositiveInt | None = Field(
        default=None, description="pacemaker's threads; default: the computer's default MPI processes per machine"
    )
    max_wallclock_seconds: PositiveInt | None = None
    """The job's walltime (continued from the interim potential when it runs out)."""
    profile: str | None = Field(default=None, description='AiiDA profile to load when none is loaded')

    @model_validator(mode='after')
    def _check(self) -> TrainingConfig:
        if 'loss_weights' in self.settings:
            raise ValueError('give loss_weights as the TrainingConfig field, not inside settings')
        if self.zbl_inner >= self.zbl_outer:
            raise ValueError(f'zbl_inner={self.zbl_inner} must be smaller than zbl_outer={self.zbl_outer}')
        message = second_zbl_core(self.settings) if self.delta_learning else None
        if message:
            raise ValueError(f'delta_learning: {message}')
        self.pacemaker_settings()
        return self

    def pacemaker_settings(self) -> PacemakerSettings:
        """Return the validated pacemaker settings with the loss weights applied (see the class docstring)."""
        return PacemakerSettings.model_validate(self.settings_dict())

    def settings_dict(self) -> dict[str, Any]:
        """The ``settings`` Dict for the calculation: the user's settings, plus ``loss_weights`` where they apply."""
        loss = (self.settings.get('fit') or {}).get('loss') or {}
        if 'loss_weights' not in self.model_fields_set and 'kappa' in loss:
            return dict(self.settings)
        return {**self.settings, 'loss_weights': self.loss_weights.model_dump(exclude_none=True)}


LOG_TAIL_LINES = 25
OVERWRITE_HINT = 'PacemakerTrainer(..., overwrite=True)'


class TrainingError(RuntimeError):
    """A training failed. Carries the exit code, the message and the tail of pacemaker's log."""

    def __init__(self, message: str, exit_status: int | None = None, log_tail: str = '', process=None):
        super().__init__(message if not log_tail else f'{message}\n--- tail of the pacemaker log ---\n{log_tail}')
        self.exit_status = exit_status
        self.exit_message = message
        self.log_tail = log_tail
        self.process = process


class PacemakerTrainer:
    """Train an ACE potential from an ASE database with pacemaker, through AiiDA."""

    def __init__(self, config: TrainingConfig, *, overwrite: bool = False):
        """:param overwrite: replace an existing file (or symbolic link) of the potential's name in ``output_dir``
        (never written through a link; always written to a temporary file and renamed into place)."""
        self.config = config
        self.overwrite = overwrite

    def train(self) -> pathlib.Path:
        """Import the data, train, export the potential; return the absolute path of the ``.yace`` file.

        Everything that can be checked is checked before anything is stored: the settings, the output file, the
        computer and code, the database's rows, and the training workflow's own checks of its inputs against the
        data read (split seed, a split that leaves structures to train on, elements, template)."""
        settings, template = self._prepare_pacemaker_input()
        directory = self._output_directory()
        code = self._code()
        pending = self._read_data_from_db()
        preview = pending.preview()
        if len(preview) < self.config.min_structures:  # the workflow's exit 202, but before anything is stored
            raise TrainingError(
                f'{self.config.data_source_db} gives {len(preview)} structure(s), at least min_structures='
                f'{self.config.min_structures} are required (nothing was imported)'
            )
        self._check_inputs(self._workflow_inputs(preview, settings, template, code))
        training_set = self._store(pending)
        node = self._execute_training(training_set, settings, template, code)
        return self._find_output_potential(node, directory)

    # -- the seed's steps ---------------------------------------------------------------------------------

    def _prepare_pacemaker_input(self):
        """Validate the settings and template; refuse what cannot be honoured yet."""
        self._load_profile()
        from aiida import orm

        settings = self.config.settings_dict()
        template = None
        if self.config.template_file is not None:
            template = orm.SinglefileData(self.config.template_file.resolve())
        return orm.Dict(settings), template

    def _read_data_from_db(self):
        """Read and check the ASE database, storing nothing yet (``.store()`` imports it, deduplicated by content
        hash, as a ``TrainingSetData``)."""
        from aiida_mlip_autopipe.importers.ase_db import read_ase_db_file
        from aiida_mlip_autopipe.importers.source_file import DatasetImportError

        try:
            return read_ase_db_file(
                self.config.data_source_db,
                selection=self.config.selection,
                on_missing_forces=self.config.on_missing_forces,
                on_invalid=self.config.on_invalid,
            )
        except DatasetImportError as exception:
            raise TrainingError(f'cannot import the training data: {exception}') from exception

    @staticmethod
    def _store(pending):
        from aiida_mlip_autopipe.importers.source_file import DatasetImportError

        try:
            return pending.store()
        except DatasetImportError as exception:
            raise TrainingError(f'cannot import the training data: {exception}') from exception

    @staticmethod
    def _check_inputs(inputs: dict) -> None:
        """The training workflow's validation of ``inputs`` (the data may be unstored): a ``TrainingError``."""
        from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain

        problem = PacemakerTrainingWorkChain.spec().inputs.validate(inputs)
        if problem is not None:
            message = ' '.join(problem.message.split())
            raise TrainingError(f'the training inputs are refused (nothing was imported): {message}')

    def _execute_training(self, training_set, settings, template, code):
        """Run the ``PacemakerTrainingWorkChain``; raise ``TrainingError`` unless it finished ok."""
        from aiida.engine import run_get_node

        from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain

        inputs = self._workflow_inputs(training_set, settings, template, code)
        _, node = run_get_node(PacemakerTrainingWorkChain, **inputs)
        if not node.is_finished_ok:
            raise TrainingError(
                f'PacemakerTrainingWorkChain<{node.pk}> failed [{node.exit_status}]: {node.exit_message}',
                exit_status=node.exit_status,
                log_tail=self._log_tail(node),
                process=node,
            )
        return node

    def _workflow_inputs(self, training_set, settings, template, code) -> dict:
        """The ``PacemakerTrainingWorkChain`` inputs of this configuration (nodes not stored yet)."""
        from aiida import orm

        # threads: num_threads, else the computer's default
        options: dict[str, Any] = {'resources': {'num_machines': 1}}
        if self.config.num_threads:
            options['resources']['num_mpiprocs_per_machine'] = self.config.num_threads
        if self.config.max_wallclock_seconds:
            options['max_wallclock_seconds'] = self.config.max_wallclock_seconds
        inputs = {
            'code': code,
            'settings': settings,
            'options': orm.Dict(options),
            'training_sets': {'database': training_set},
            'min_structures': orm.Int(self.config.min_structures),
            'test_fraction': orm.Float(self.config.test_fraction),
            'split_seed': orm.Int(self.config.split_seed),
            'delta_learning': orm.Bool(self.config.delta_learning),
            'zbl_cutoffs': orm.Dict({'inner': self.config.zbl_inner, 'outer': self.config.zbl_outer}),
        }
        if template is not None:
            inputs['base'] = {'pacemaker': {'template': template}}
        return inputs

    def _find_output_potential(self, node, directory: pathlib.Path) -> pathlib.Path:
        """Export the ``.yace`` potential of the finished workflow into ``output_dir`` (never through a symbolic
        link, an existing file only with ``overwrite``, atomically)."""
        from aiida_mlip_autopipe.potentials.export import ExportError, write_files

        potential = node.outputs.potential
        elements = ''.join(potential.base.attributes.get('elements', []))
        name = self.config.potential_filename or f'{elements or "potential"}_{potential.pk}.yace'
        try:
            (path,) = write_files(directory, {name: potential.get_content(mode='rb')}, self.overwrite, OVERWRITE_HINT)
        except ExportError as exception:
            raise TrainingError(
                f'the potential {potential.filename}<{potential.pk}> was trained but not written: {exception} '
                f'(`mlip-autopipe export {potential.pk} -o DIR` writes it)',
                process=node,
            ) from exception
        return path

    # -- helpers --------------------------------------------------------------------------------------------

    def _output_directory(self) -> pathlib.Path:
        """Create ``output_dir`` (before any work): a path that exists and is not a directory is an error."""
        directory = self.config.output_dir.expanduser().resolve()
        if directory.exists() and not directory.is_dir():
            raise TrainingError(f'output_dir {directory} exists and is not a directory: give a directory')
        target = directory / self.config.potential_filename if self.config.potential_filename else None
        if target is not None and target.is_dir():
            raise TrainingError(f'potential_filename {target} is a directory: give a file name')
        if target is not None:
            from aiida_mlip_autopipe.potentials.export import target_problem

            problem = target_problem(target, self.overwrite, OVERWRITE_HINT)
            if problem:
                raise TrainingError(f'potential_filename: {problem}')
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exception:
            raise TrainingError(f'cannot create output_dir {directory}: {exception}') from exception
        return directory

    def _load_profile(self) -> None:
        from aiida import get_profile, load_profile
        from aiida.common.exceptions import ConfigurationError, ProfileConfigurationError

        if get_profile() is not None:
            return
        try:
            load_profile(self.config.profile)
        except (ConfigurationError, ProfileConfigurationError) as exception:
            raise TrainingError(
                f'no AiiDA profile could be loaded ({exception}); create one with `verdi presto --use-zeromq` '
                '(scripts/setup.sh does) or name one with TrainingConfig(profile=...)'
            ) from exception

    def _computer(self):
        """The computer that runs pacemaker; it must say how many threads to use where ``num_threads`` does not."""
        from aiida import orm
        from aiida.common.exceptions import NotExistent

        try:
            computer = orm.load_computer(self.config.computer)
        except NotExistent as exception:
            raise TrainingError(
                f'no AiiDA computer {self.config.computer!r} in this profile: set one up (`verdi computer setup`; '
                '`verdi computer list` shows them) or name another with TrainingConfig(computer=...)'
            ) from exception
        from aiida_mlip_autopipe.calculations.pacemaker import thread_count_missing

        if not self.config.num_threads and thread_count_missing(computer, {'num_machines': 1}):
            raise TrainingError(
                f'computer {computer.label!r} has no default number of MPI processes per machine, which the façade '
                'takes as the number of threads: give TrainingConfig(num_threads=...) or set the default '
                '(`verdi computer setup --mpiprocs-per-machine N`)'
            )
        return computer

    def _executable(self, computer) -> str:
        """``pacemaker_executable`` as a path on ``computer``, checked there through its transport.

        A relative path means one relative to the working directory only on a local computer; nothing is resolved
        (a symbolic link stays a link, as the job will run it).
        """
        from aiida.transports.plugins.local import LocalTransport

        executable = self.config.pacemaker_executable
        is_local = issubclass(computer.get_transport_class(), LocalTransport)
        if is_local:
            executable = os.path.abspath(os.path.expanduser(executable))
        elif not executable.startswith('/'):
            raise TrainingError(
                f'pacemaker_executable {executable!r} must be an absolute path on computer {computer.label!r}'
            )
        try:
            with computer.get_transport() as transport:
                mode = transport.get_mode(executable) if transport.isfile(executable) else None
        except Exception as exception:  # any transport failure gets the same advice
            raise TrainingError(
                f'cannot reach computer {computer.label!r} to check pacemaker_executable ({type(exception).__name__}: '
                f'{exception}); check it with `verdi computer test {computer.label}`'
            ) from exception
        if mode is None:
            raise TrainingError(f'pacemaker_executable {executable} does not exist on computer {computer.label!r}')
        if not mode & 0o111:
            raise TrainingError(f'pacemaker_executable {executable} on computer {computer.label!r} is not executable')
        return executable

    def _code(self):
        """Return the ``InstalledCode`` for ``pacemaker_executable`` on ``computer`` (created once)."""
        from aiida_mlip_autopipe.codes import installed_code

        computer = self._computer()
        executable = self._executable(computer)
        return installed_code(
            computer,
            executable,
            label=f'pacemaker-{hashlib.sha256(executable.encode()).hexdigest()[:8]}',
            description=f'pacemaker at {executable} (created by PacemakerTrainer)',
            default_calc_job_plugin='mlip_autopipe.pacemaker',
        )

    @staticmethod
    def _log_tail(node) -> str:
        """The tail of pacemaker's stderr (or log) of the last calculation under ``node``."""
        from aiida import orm

        from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation

        calculations = sorted(
            (child for child in node.called_descendants if isinstance(child, orm.CalcJobNode)),
            key=lambda c: cast(int, c.pk),  # stored nodes: aiida-core types ``pk`` as ``int | None`` for unstored ones
        )
        if not calculations or 'retrieved' not in calculations[-1].outputs:
            return ''
        retrieved = calculations[-1].outputs.retrieved
        names = retrieved.base.repository.list_object_names()
        for name in (PacemakerCalculation.STDERR, PacemakerCalculation.LOG):
            if name in names:
                lines = retrieved.base.repository.get_object_content(name).splitlines()
                return '\n'.join(lines[-LOG_TAIL_LINES:])
        return ''
