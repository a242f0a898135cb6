"""``PacemakerParser``: turn a pacemaker job's retrieved files into potential, metrics and learning-curve nodes.

It reads only the ``retrieved`` folder, never the remote working directory.
"""

from __future__ import annotations

import io
import json
import math
import re
import signal
from typing import Any, Literal, overload

import numpy as np
import yaml
from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser

from aiida_mlip_autopipe.calculations.files import PacemakerFiles as Files
from aiida_mlip_autopipe.potentials.accuracy import prediction_errors
from aiida_mlip_autopipe.potentials.bbasis import read_bbasis
from aiida_mlip_autopipe.potentials.reference_energy import ReferenceEnergyError, e0_per_element, with_e0

__all__ = ('PacemakerParser', 'last_error_line', 'parse_metrics_table', 'potential_summary')

ERROR_LINE = re.compile(r'^([A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)|Killed|Traceback)\b')
FIT_TIME = re.compile(r'Fitting took\s+([0-9.]+)\s+seconds')
VERSION = re.compile(r'pacemaker/pyace version:\s*(\S+)')
DATASET_SIZE = re.compile(r'(Fitting|Test) dataset size:\s*(\d+) structures / (\d+) atoms')
#: Slurm's line when it stops a job at its ``--time``:
#: ``slurmstepd-node: error: *** JOB 7 ON node CANCELLED AT 2026-11-28T23:51:24 DUE TO TIME LIMIT ***``.
SLURM_TIME_LIMIT = re.compile(r'\*\*\* (JOB|STEP) \S+ ON \S+ CANCELLED AT \S+ DUE TO TIME LIMIT')
OPTIMIZATION = re.compile(r'Optimization result\(success=(True|False), status=(-?\d+), message=([^,]*)')

#: Learning-curve arrays and their units (``test_*`` arrays have their own ``test_iteration``).
LEARNING_CURVE_UNITS = {
    'iteration': '1',
    'loss': '1',
    'rmse_energy': 'meV/atom',
    'rmse_forces': 'meV/Å (per component)',
    'mae_forces': 'meV/Å (per component)',
}


def signal_name(number: int) -> str:
    """``SIGSEGV`` for 11, etc.; ``signal N`` for numbers the platform does not name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f'signal {number}'


def last_error_line(text: str) -> str | None:
    """Return the last line of a traceback-bearing text that names an error (e.g. ``ValueError: ...``)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if ERROR_LINE.match(line) and not line.startswith('Traceback'):
            return line
    return None


def parse_metrics_table(text: str) -> dict[str, np.ndarray]:
    """Parse a whitespace-separated pacemaker metrics table (header row) into float columns."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError('empty metrics table')
    header, rows = lines[0], lines[1:]
    if any(len(row) != len(header) for row in rows):
        raise ValueError('metrics table has rows of different lengths')
    values = np.array([[float(value) for value in row] for row in rows], dtype=float).reshape(len(rows), len(header))
    return {name: values[:, index] for index, name in enumerate(header)}


def potential_summary(text: str) -> dict[str, Any]:
    """Return elements, cutoff (Å), number of functions and metadata of a B-basis YAML potential."""
    return read_bbasis(text).as_dict()


class PacemakerParser(Parser):
    """Parse the retrieved files of a :class:`~aiida_mlip_autopipe.calculations.pacemaker.PacemakerCalculation`."""

    @overload
    def _read(self, name: str, mode: Literal['r'] = 'r') -> str | None: ...

    @overload
    def _read(self, name: str, mode: Literal['rb']) -> bytes | None: ...

    def _read(self, name: str, mode: Literal['r', 'rb'] = 'r') -> str | bytes | None:
        """The content of a retrieved file (``None`` if absent); text is decoded leniently (garbage stays text)."""
        if name not in self._names:
            return None
        content = self.retrieved.base.repository.get_object_content(name, mode='rb')
        return content if mode == 'rb' else content.decode('utf-8', errors='replace')

    def _status(self, name: str) -> int | None:
        text = self._read(name)
        if text is None:
            return None
        try:
            return int(text.strip())
        except ValueError:
            return None

    def _stopped_at_time_limit(self) -> bool:
        """Slurm's time-limit line anywhere in the scheduler's stderr.

        Without Slurm accounting, aiida-core recognises it only as the first line; a line printed before it (a
        ``module load`` message) would otherwise turn a walltime stop into a missing status and no continuation.
        """
        text = self._read(self.node.get_option('scheduler_stderr') or '_scheduler-stderr.txt')
        return bool(text and SLURM_TIME_LIMIT.search(text))

    def parse(self, **kwargs) -> ExitCode | None:
        """Map the retrieved files to outputs or a named exit code; unreadable content is exit 302, never a crash."""
        self._names = set(self.retrieved.base.repository.list_object_names())
        try:
            return self._parse()
        except (
            KeyError,
            IndexError,
            TypeError,
            ValueError,
            ArithmeticError,
            AttributeError,
            OSError,
            yaml.YAMLError,
        ) as exception:
            self.logger.warning(f'unreadable output: {type(exception).__name__}: {exception}')
            return self.exit_codes.ERROR_OUTPUT_LOG_UNREADABLE.format(line=f'{type(exception).__name__}: {exception}')

    def _parse(self) -> ExitCode | None:
        codes = self.exit_codes
        stderr = self._read(Files.STDERR) or ''
        error_line = last_error_line(stderr)

        missing = self._read(Files.MISSING_EXECUTABLE)
        if missing is not None:
            return codes.ERROR_EXECUTABLE_MISSING.format(path=missing.strip())
        prepare_status = self._status(Files.PREPARE_STATUS)
        if prepare_status not in (None, 0):
            line = last_error_line(self._read(Files.PREPARE_LOG) or '') or f'exit status {prepare_status}'
            return codes.ERROR_DATASET_CONVERSION_FAILED.format(line=line)

        if self.node.exit_status == codes.ERROR_SCHEDULER_OUT_OF_WALLTIME.status or self._stopped_at_time_limit():
            return codes.ERROR_OUT_OF_WALLTIME
        log = self._read(Files.LOG)
        status = self._status(Files.PACEMAKER_STATUS)
        nan_iteration = self._nan_iteration(log)
        if status is None:
            if self.node.exit_status is not None and self.node.exit_status != 0:  # the scheduler's verdict
                return None
            return codes.ERROR_STATUS_MISSING
        if status != 0:
            if nan_iteration is not None:
                return codes.ERROR_NAN_LOSS.format(iteration=nan_iteration)
            if status >= 128 and error_line is None:
                signal_number = status - 128
                if signal_number == signal.SIGKILL:
                    return codes.ERROR_PACEMAKER_KILLED.format(signal=signal_number)
                return codes.ERROR_PACEMAKER_CRASHED.format(signal=signal_number, name=signal_name(signal_number))
            return codes.ERROR_PACEMAKER_FAILED.format(status=status, line=error_line or '(no error line)')
        if log is None:
            return codes.ERROR_OUTPUT_LOG_MISSING.format(line=error_line or '(none)')
        if nan_iteration is not None:
            return codes.ERROR_NAN_LOSS.format(iteration=nan_iteration)
        potential_yaml = self._read(Files.OUTPUT_YAML)
        if potential_yaml is None:
            return codes.ERROR_OUTPUT_POTENTIAL_MISSING.format(line=error_line or '(none)')
        if Files.OUTPUT_YACE not in self._names or self._status(Files.YACE_STATUS) not in (0, None):
            line = last_error_line(self._read(Files.YACE_LOG) or '') or '(none)'
            return codes.ERROR_OUTPUT_YACE_MISSING.format(line=line)
        metrics_text = self._read(Files.METRICS)
        if metrics_text is None:
            return codes.ERROR_OUTPUT_METRICS_MISSING
        try:
            train = parse_metrics_table(metrics_text)
            test_text = self._read(Files.TEST_METRICS)
            test = parse_metrics_table(test_text) if test_text and len(test_text.splitlines()) > 1 else None
            summary = potential_summary(potential_yaml)
        except (ValueError, yaml.YAMLError, AttributeError) as exception:
            return codes.ERROR_OUTPUT_LOG_UNREADABLE.format(line=str(exception))
        if not len(train.get('loss', [])):
            return codes.ERROR_OUTPUT_METRICS_MISSING
        try:
            e0, reference_source = e0_per_element(summary['metadata'], summary['elements'])
            yace_text = self._read(Files.OUTPUT_YACE)
            assert yace_text is not None  # retrieved: checked above
            yace = with_e0(yace_text, e0)
        except ReferenceEnergyError as exception:
            return codes.ERROR_OUTPUT_REFERENCE_ENERGY.format(message=str(exception))

        predictions = {split: self._predictions(f'{split}_predictions.npz') for split in ('train', 'test')}
        metrics = self._metrics(train, test, summary, log, predictions['test'])
        metrics['reference_energy'] = e0
        metrics['reference_energy_source'] = reference_source
        threads = self._threads()
        if threads:
            metrics['threads'] = threads
        metrics.update(self._settings_record())
        link = self.node.base.links.get_incoming(link_label_filter='training_set').first()
        baseline = link.node.base.attributes.get('zbl_baseline', None) if link is not None else None
        if baseline:
            metrics['delta_learning'] = baseline
        outputs = {  # everything is built before anything is attached: no half-parsed result
            'metrics': orm.Dict(metrics),
            'learning_curve': self._learning_curve(train, test),
            'potential_yaml': self._singlefile(Files.OUTPUT_YAML, summary, metrics),
            'potential': self._singlefile(Files.OUTPUT_YACE, summary, metrics, content=yace.encode()),
        }
        for split, prediction in predictions.items():
            if prediction is not None:
                outputs[f'{split}_predictions'] = prediction
        for label, node in outputs.items():
            self.out(label, node)
        return None

    # -- pieces ---------------------------------------------------------------------------------------------

    def _threads(self) -> dict[str, int]:
        """The thread counts pacemaker ran with (``OMP_NUM_THREADS``, ``TF_NUM_INTRAOP/INTEROP_THREADS``)."""
        text = self._read(Files.THREADS) or ''
        pairs = (item.partition('=') for item in text.split())
        return {name: int(value) for name, _, value in pairs if value.strip().isdigit()}

    def _settings_record(self) -> dict[str, Any]:
        """What the calculation recorded when it wrote ``input.yaml`` (``calculations/files.settings_record``): the
        settings pacemaker used, what the plugin filled and dropped, and which reference energy and why (``{}`` for a
        calculation node without the record, e.g. one made before it existed)."""
        try:
            text = self.node.base.repository.get_object_content(Files.SETTINGS_RECORD, mode='r')
        except FileNotFoundError:
            return {}
        try:
            record = json.loads(text)
        except ValueError:
            self.logger.warning(f'{Files.SETTINGS_RECORD} of the calculation is not JSON: not recorded in the metrics')
            return {}
        return record if isinstance(record, dict) else {}

    def _nan_iteration(self, log: str | None) -> int | None:
        text = self._read(Files.METRICS)
        if text:
            try:
                table = parse_metrics_table(text)
            except ValueError:
                table = {}
            loss = table.get('loss')
            if loss is not None and len(loss) and not np.all(np.isfinite(loss)):
                return int(table['iter_num'][np.flatnonzero(~np.isfinite(loss))[0]])
        if log:
            match = re.search(r'#(\d+)\s+\(\d+ evals\):\s+Loss:\s+(nan|inf)', log, flags=re.IGNORECASE)
            if match:
                return int(match.group(1))
        return None

    def _metrics(
        self, train: dict, test: dict | None, summary: dict, log: str, test_predictions: orm.ArrayData | None
    ) -> dict[str, Any]:
        stdout = self._read(Files.STDOUT) or ''
        metrics: dict[str, Any] = {
            'rmse_energy_train': float(train['rmse_epa'][-1] * 1000),
            'rmse_forces_train': float(train['rmse_f_comp'][-1] * 1000),
            'mae_forces_train': float(train['mae_f_comp'][-1] * 1000),
            'loss': float(train['loss'][-1]),
            'iterations': int(train['iter_num'][-1]),
            'num_functions': int(train['nfuncs'][-1]),
            'num_parameters': int(train['ncoefs'][-1]),
            'elements': summary['elements'],
            'cutoff': summary['cutoff'],
            'units': {'rmse_energy': 'meV/atom', 'rmse_forces': 'meV/Å (per force component)', 'fit_time': 's'},
        }
        if test is not None and len(test.get('loss', [])):
            metrics['rmse_energy_test'] = float(test['rmse_epa'][-1] * 1000)
            metrics['rmse_forces_test'] = float(test['rmse_f_comp'][-1] * 1000)
            metrics['mae_forces_test'] = float(test['mae_f_comp'][-1] * 1000)
            metrics['loss_test'] = float(test['loss'][-1])
        elif test_predictions is not None:
            # pacemaker's ``pyace`` evaluator writes no test metrics (the header of test_metrics.txt only): the errors
            # of the final potential on the test set, as pacemaker's tables define them, from its test predictions
            metrics.update({f'{key}_test': value for key, value in prediction_errors(test_predictions).items()})
            metrics['test_metrics_source'] = 'test_predictions'
        match = FIT_TIME.search(stdout)
        if match:
            metrics['fit_time'] = float(match.group(1))
        match = VERSION.search(log) if log else None
        metrics['pacemaker_version'] = match.group(1) if match else summary['metadata'].get('pacemaker_version')
        for kind, structures, atoms in DATASET_SIZE.findall(log or ''):
            prefix = 'train' if kind == 'Fitting' else 'test'
            metrics[f'num_structures_{prefix}'] = int(structures)
            metrics[f'num_atoms_{prefix}'] = int(atoms)
        matches = OPTIMIZATION.findall(log or '')
        if matches:
            success, _, message = matches[-1]
            metrics['optimizer_converged'] = success == 'True'
            metrics['optimizer_message'] = message.strip()
        return {key: value for key, value in metrics.items() if not (isinstance(value, float) and math.isnan(value))}

    def _learning_curve(self, train: dict, test: dict | None) -> orm.ArrayData:
        curve = orm.ArrayData()
        for prefix, table in (('', train), ('test_', test)):
            if table is None or not len(table.get('loss', [])):
                continue
            curve.set_array(f'{prefix}iteration', table['iter_num'].astype(int))
            curve.set_array(f'{prefix}loss', table['loss'])
            curve.set_array(f'{prefix}rmse_energy', table['rmse_epa'] * 1000)
            curve.set_array(f'{prefix}rmse_forces', table['rmse_f_comp'] * 1000)
            curve.set_array(f'{prefix}mae_forces', table['mae_f_comp'] * 1000)
        curve.base.attributes.set('units', LEARNING_CURVE_UNITS)
        return curve

    def _singlefile(self, name: str, summary: dict, metrics: dict, content: bytes | None = None) -> orm.SinglefileData:
        content = self._read(name, mode='rb') if content is None else content
        assert content is not None  # called without content only for the potential YAML, checked present before
        node = orm.SinglefileData(io.BytesIO(content), filename=name)
        attributes = {
            'elements': summary['elements'],
            'cutoff': summary['cutoff'],
            'num_functions': metrics['num_functions'],
            'pacemaker_version': metrics.get('pacemaker_version'),
            'reference_energy': metrics['reference_energy'],
        }
        queryable = ('rmse_energy_train', 'rmse_forces_train', 'rmse_energy_test', 'rmse_forces_test', 'delta_learning')
        for key in (*queryable, 'num_structures_train', 'num_structures_test'):
            if key in metrics:
                attributes[key] = metrics[key]
        for key, value in attributes.items():
            node.base.attributes.set(key, value)
        return node

    def _predictions(self, name: str) -> orm.ArrayData | None:
        content = self._read(name, mode='rb')
        if content is None:
            return None
        try:
            with np.load(io.BytesIO(content), allow_pickle=False) as handle:
                arrays = {key: handle[key] for key in handle.files}
        except (ValueError, OSError):
            self.logger.warning(f'could not read {name}; predictions not stored')
            return None
        node = orm.ArrayData()
        for key, value in arrays.items():
            node.set_array(key, value)
        node.base.attributes.set('units', {'energy': 'eV', 'forces': 'eV/Å'})
        return node
