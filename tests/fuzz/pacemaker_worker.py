"""Pacemaker's side of the differential fuzz test: one long-lived process in pacemaker's own environment.

Run with pacemaker's interpreter (``.venv-pacemaker/bin/python pacemaker_worker.py WORKDIR``). It imports pyace and
TensorFlow once, then answers JSON requests, one per line on stdin, with one JSON line on stdout:

* ``{"op": "setup", "npz": PATH}``: turn the plugin's stable dataset (``structures.npz``) into pacemaker's pickle
  with the plugin's own job script (``pacemaker_io.py to-dataframe``, as every job does).
* ``{"op": "bbasis", "elements": [...]}``: a valid B-basis potential YAML for these elements (pacemaker's
  ``construct_bbasisconfiguration`` of a tiny basis), to feed as an ``initial_potential``.
* ``{"op": "run", "text": INPUT_YAML, "potential": TEXT or null, "flag": "-p" | "-ip" | null, "fit": BOOL}``:
  in a fresh directory, read ``input.yaml`` exactly as pacemaker reads it (``ruamel.yaml.YAML(typ='safe',
  pure=True)``), then run pacemaker's own ``main`` with the plugin's command line, ``--dry-run`` unless ``fit``
  (then the whole job: fit, save, predictions, and ``pace_yaml2yace``'s conversion). Answers ``{"read": ...,
  "potential_config": "dict" | FILE, "error": null | "Type: message", "ran": true}`` (``"read_only": true``: only
  the reading). Pacemaker's matplotlib figures are skipped (they take most of a dry run's time and decide nothing).

Pacemaker's own prints go to stderr; stdout carries only the answers.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

for _name in ('OMP_NUM_THREADS', 'TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS'):
    os.environ.setdefault(_name, '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '-1')

ANSWERS = os.fdopen(os.dup(1), 'w', buffering=1)  # the protocol channel; fd 1 itself now goes to stderr
os.dup2(2, 1)
sys.stdout = sys.stderr

import pandas as pd  # noqa: E402
import ruamel.yaml  # noqa: E402
from pyace import generalfit as pyace_generalfit  # noqa: E402
from pyace.cli import pacemaker as pacemaker_cli  # noqa: E402
from tensorpotential.compat.pace import fit as _tensorpot_fit  # noqa: E402, F401  (TensorFlow, once, at start-up)
from tensorpotential.compat.pace import tensorpot as _tensorpot  # noqa: E402, F401

DATASET = 'training_data.pckl.gzip'
INITIAL_POTENTIAL = 'initial_potential.yaml'
JOB_SCRIPT = Path(__file__).resolve().parents[2] / 'aiida_mlip_autopipe' / 'jobscripts' / 'pacemaker_io.py'


def _plain(value):
    """JSON-able copy of what ruamel read (dates and other scalars become tagged strings, so they differ)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float('inf') else repr(value)
    if isinstance(value, datetime.date | datetime.datetime):
        return f'<{type(value).__name__} {value.isoformat()}>'
    return f'<{type(value).__name__} {value!r}>'


def _error(exception: BaseException) -> str:
    lines = str(exception).strip().splitlines()
    return f'{type(exception).__name__}: {lines[0] if lines else ""}'[:300]


class _Recorder:
    """Stands in for ``GeneralACEFit`` in pacemaker's ``main``: records the potential config it is handed."""

    seen: dict = {}
    real = pacemaker_cli.GeneralACEFit

    def __new__(cls, *args, **kwargs):
        potential = kwargs.get('potential_config')
        cls.seen['potential_config'] = potential if isinstance(potential, str) else type(potential).__name__
        return cls.real(*args, **kwargs)


pacemaker_cli.GeneralACEFit = _Recorder


def _no_plot(*args, **kwargs) -> None:
    """Pacemaker's matplotlib figures (energy/force distributions) take most of a dry run's time and decide nothing."""


pyace_generalfit.plot_ef_distributions = _no_plot
pacemaker_cli.plot_analyse_error_distributions = _no_plot


def setup(request: dict, base: Path) -> dict:
    import importlib.util

    spec = importlib.util.spec_from_file_location('pacemaker_io', JOB_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    count = module.to_dataframe(request['npz'], str(base / DATASET))
    return {'structures': count}


def bbasis(request: dict, base: Path) -> dict:
    from pyace.basisextension import construct_bbasisconfiguration

    config = construct_bbasisconfiguration(
        {
            'elements': request['elements'],
            'embeddings': {'ALL': {'npot': 'FinnisSinclairShiftedScaled', 'fs_parameters': [1, 1], 'ndensity': 1}},
            'bonds': {'ALL': {'radbase': 'SBessel', 'radparameters': [5.25], 'rcut': 4.0, 'dcut': 0.01}},
            'functions': {'ALL': {'nradmax_by_orders': [3, 1], 'lmax_by_orders': [0, 0]}},
        }
    )
    path = base / 'bbasis.yaml'
    config.save(str(path))
    return {'text': path.read_text()}


def run(request: dict, base: Path) -> dict:
    answer: dict = {'read': None, 'potential_config': None, 'error': None}
    directory = Path(tempfile.mkdtemp(dir=base))
    cwd = os.getcwd()
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        os.chdir(directory)
        os.symlink(base / DATASET, DATASET)
        Path('input.yaml').write_text(request['text'])
        if request.get('potential') is not None:
            Path(INITIAL_POTENTIAL).write_text(request['potential'])
        try:
            with open('input.yaml') as handle:  # exactly pyace/cli/pacemaker.py
                answer['read'] = _plain(ruamel.yaml.YAML(typ='safe', pure=True).load(handle))
        except Exception as exception:
            answer['error'] = _error(exception)
            return answer
        if request.get('read_only'):
            return answer
        answer['ran'] = True
        argv = ['input.yaml', '-o', 'output_potential.yaml', '-l', 'log.txt']
        if request.get('flag'):
            argv += [request['flag'], INITIAL_POTENTIAL]
        if not request.get('fit'):
            argv.append('--dry-run')
        _Recorder.seen = {}
        try:
            pacemaker_cli.main(argv)
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                answer['error'] = f'SystemExit: {exit_.code}'
        except BaseException as exception:  # pacemaker failing is an answer, not the worker's end
            answer['error'] = _error(exception)
            traceback.print_exc()
        answer['potential_config'] = _Recorder.seen.get('potential_config')
        if request.get('fit') and answer['error'] is None:
            if not Path('output_potential.yaml').is_file():
                answer['error'] = 'no output_potential.yaml written'
            else:
                try:  # what pace_yaml2yace does
                    from pyace import ACEBBasisSet

                    ACEBBasisSet('output_potential.yaml').to_ACECTildeBasisSet().save_yaml('output_potential.yace')
                except BaseException as exception:
                    answer['error'] = f'pace_yaml2yace: {_error(exception)}'
        if request.get('fit') and answer['error'] is None:  # the plugin stores them as train_predictions
            answer['error'] = _predictions_problem(Path('train_pred.pckl.gzip'))
        return answer
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        os.chdir(cwd)
        shutil.rmtree(directory, ignore_errors=True)


def _predictions_problem(path: Path) -> str | None:
    """Why pacemaker's predictions at ``path`` are missing or unreadable (as the plugin's job script reads them), or
    None: a fit that exits 0 without them would leave the plugin's calculation without its predictions."""
    if not path.is_file():
        return f'exit 0 but no {path.name} written (predictions dropped)'
    try:
        frame = pd.read_pickle(path, compression='gzip')
        if not {'energy_pred', 'forces_pred'} <= set(frame.columns) or len(frame) == 0:
            return f'{path.name} lacks energy_pred/forces_pred rows: {sorted(frame.columns)}'
    except BaseException as exception:
        return f'{path.name} unreadable: {_error(exception)}'
    return None


def main() -> None:
    base = Path(sys.argv[1]).resolve()
    base.mkdir(parents=True, exist_ok=True)
    operations = {'setup': setup, 'bbasis': bbasis, 'run': run}
    ANSWERS.write(json.dumps({'ready': True}) + '\n')
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            answer = operations[request['op']](request, base)
        except BaseException as exception:
            traceback.print_exc()
            answer = {'worker_error': _error(exception)}
        ANSWERS.write(json.dumps(answer) + '\n')


if __name__ == '__main__':
    main()
