"""Benchmark: what a ``PacemakerCalculation`` adds to raw ``pacemaker`` + ``pace_yaml2yace`` (goal: < 1.5 s).

Same data (the quick start's: 60 + 10 Cu-Al EMT cells of 32 atoms), same ``input.yaml`` (the one the plugin
renders), same threads (all cores). Raw: the two commands in a fresh folder with the pickles already made (what a
user running pacemaker by hand starts from). Plugin: ``run()`` of the calculation, from the call until its outputs
are stored (upload, the job with its dataset conversion, retrieval, parsing). Pairs alternate; prints each pair, the
median difference, and where the plugin run's time around pacemaker went (aiida-core's engine or the plugin).

Usage: python benchmarks/fit_overhead.py [PAIRS]   (default 3)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import PACEMAKER_PYTHON, REPO, ensure_profile

PACEMAKER_BIN = REPO / '.venv-pacemaker' / 'bin'
SETTINGS = {
    'potential': {
        'bonds': {'ALL': {'radbase': 'SBessel', 'radparameters': [5.25], 'rcut': 5.0, 'dcut': 0.01}},
        'functions': {'number_of_functions_per_element': 20},
    },
    'fit': {'maxiter': 50, 'loss': {'kappa': 0.3, 'L1_coeffs': 1e-8, 'L2_coeffs': 1e-8}},
    'backend': {'batch_size': 50, 'display_step': 10},
}


def raw_run(inputs: dict, threads: int) -> float:
    """Wall time of ``pacemaker input.yaml`` + ``pace_yaml2yace`` on prepared pickles."""
    from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation
    from aiida_mlip_autopipe.jobscripts import pacemaker_io

    _, text = PacemakerCalculation.input_document(inputs)
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        (folder / 'input.yaml').write_text(text)
        pairs = []
        for name, pickle in (('training_set', 'training_data.pckl.gzip'), ('test_set', 'test_data.pckl.gzip')):
            npz = folder / f'{name}.npz'
            npz.write_bytes(inputs[name].base.repository.get_object_content('structures.npz', mode='rb'))
            pairs += [str(npz), str(folder / pickle)]
        subprocess.run([str(PACEMAKER_PYTHON), pacemaker_io.__file__, 'to-dataframe', *pairs], check=True)
        env = {**os.environ, **{name: str(threads) for name in ('OMP_NUM_THREADS', 'TF_NUM_INTRAOP_THREADS')}}
        env['TF_NUM_INTEROP_THREADS'] = str(threads)
        start = time.perf_counter()
        for command in (
            [str(PACEMAKER_BIN / 'pacemaker'), 'input.yaml', '-o', 'output_potential.yaml', '-l', 'log.txt'],
            [str(PACEMAKER_BIN / 'pace_yaml2yace'), '-o', 'output_potential.yace', 'output_potential.yaml'],
        ):
            subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)
        return time.perf_counter() - start


def timed(owner, name: str, seconds: dict) -> None:
    """Wrap ``owner.name`` so that each call adds its wall time to ``seconds[name]``: the plugin's own steps inside
    the engine's phases (``prepare_for_submission``, the parser's ``parse``)."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start

    setattr(owner, name, wrapper)


def plugin_run(code, inputs: dict) -> tuple[float, dict]:
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation
    from aiida_mlip_autopipe.parsers.pacemaker import PacemakerParser

    seconds: dict[str, float] = {}
    originals = PacemakerCalculation.prepare_for_submission, PacemakerParser.parse
    timed(PacemakerCalculation, 'prepare_for_submission', seconds)
    timed(PacemakerParser, 'parse', seconds)
    try:
        start = time.perf_counter()
        _, node = run_get_node(PacemakerCalculation, code=code, settings=orm.Dict(SETTINGS), **inputs)
        wall = time.perf_counter() - start
    finally:
        PacemakerCalculation.prepare_for_submission, PacemakerParser.parse = originals
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    return wall, phases(node, seconds['prepare_for_submission'], seconds['parse'])


def phases(node, prepare: float, parse: float) -> dict:
    """Where a local run's time went, from the work directory's file times, the node's timestamps and the plugin's
    own steps timed in the process (``prepare``, ``parse``; s)."""
    import datetime

    from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation as Calc

    folder = Path(node.get_remote_workdir())
    mtime = lambda name: (folder / name).stat().st_mtime  # noqa: E731
    end = max(path.stat().st_mtime for path in folder.iterdir())
    checked = datetime.datetime.fromisoformat(node.base.attributes.get('scheduler_lastchecktime')).timestamp()
    return {
        'plugin: prepare_for_submission (settings, input.yaml)': prepare,
        'engine: create, upload, submit (the rest)': mtime(Calc.JOB_STARTED) - node.ctime.timestamp() - prepare,
        'plugin: dataset conversion in the job': mtime(Calc.PREPARE_STATUS) - mtime(Calc.JOB_STARTED),
        'plugin: prediction conversion in the job': end - mtime(Calc.OUTPUT_YACE),
        'engine: noticing the end (poll interval)': checked - end,
        'plugin: parse': parse,
        'engine: retrieve, store (the rest)': node.mtime.timestamp() - checked - parse,
    }


def main(pairs: int) -> None:
    ensure_profile('fit-overhead')
    from aiida import load_profile, orm

    load_profile('fit-overhead')
    from aiida_mlip_autopipe.data.training_set import TrainingSetData
    from aiida_mlip_autopipe.demo.emt import emt_structures

    try:
        code = orm.load_code('pacemaker@localhost')
    except Exception:
        code = orm.InstalledCode(
            label='pacemaker',
            computer=orm.load_computer('localhost'),
            filepath_executable=str(PACEMAKER_BIN / 'pacemaker'),
        ).store()
    threads = os.cpu_count() or 1
    inputs = {
        'training_set': TrainingSetData.from_atoms(emt_structures(60, repeat=2, seed=1)).store(),
        'test_set': TrainingSetData.from_atoms(emt_structures(10, repeat=2, seed=2)).store(),
        'metadata': {'options': {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': threads}}},
    }
    differences, breakdowns = [], []
    for index in range(pairs):
        raw = raw_run({**inputs, 'settings': orm.Dict(SETTINGS)}, threads)
        plugin, breakdown = plugin_run(code, inputs)
        differences.append(plugin - raw)
        breakdowns.append(breakdown)
        print(f'pair {index + 1}: raw {raw:.1f} s, PacemakerCalculation {plugin:.1f} s, overhead {plugin - raw:+.2f} s')
    print(f'median overhead of {pairs} pairs: {statistics.median(differences):+.2f} s per fit ({threads} threads)')
    print('where the time around pacemaker goes (median of the runs):')
    for phase in breakdowns[0]:
        print(f'  {phase}: {statistics.median(b[phase] for b in breakdowns):.2f} s')
    for owner in ('plugin', 'engine'):
        total = statistics.median(sum(v for k, v in b.items() if k.startswith(owner)) for b in breakdowns)
        print(f'{owner} in all: {total:.2f} s')


if __name__ == '__main__':
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
