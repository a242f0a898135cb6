"""Benchmark: exploration throughput of ``explore.py`` (MD with pyace's calculator and the extrapolation grade)
serially and over worker processes, against pyace's calculator alone (no active set, no grade).

Runs the job script as the exploration job runs it (pacemaker's Python, in a scratch folder) on fcc Cu cells of
``--atoms`` atoms with the potential of ``../shared/pacemaker-runs/success``; the grade window is set so that every
trajectory runs its steps. Prints MD steps per second (all trajectories together) per number of processes.

Usage::

    python benchmarks/exploration.py                      # 108-atom cells, 4 starts x 2 temperatures, 1 and 2 processes
    python benchmarks/exploration.py --atoms 32 --processes 1 2 4 8
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import PACEMAKER_PYTHON, REPO

SHARED_RUN = REPO.parent / 'shared' / 'pacemaker-runs' / 'success'
CALCULATOR_ALONE = """
import sys, time, numpy as np
from ase.md.langevin import Langevin
from ase import units
from pacemaker_io import build_atoms, load_arrays
from pyace import PyACECalculator
calculator = PyACECalculator('potential.yaml')
steps = int(sys.argv[1])
started, total = time.perf_counter(), 0
for atoms in build_atoms(load_arrays('structures.npz')):
    atoms.calc = calculator
    Langevin(atoms, 2 * units.fs, temperature_K=600, friction=0.02 / units.fs).run(steps)
    total += steps
print(total / (time.perf_counter() - started))
"""


def starts(atoms: int, count: int) -> list:
    from ase.build import bulk

    repeat = max(1, round((atoms / 4) ** (1 / 3)))
    cell = bulk('Cu', 'fcc', a=3.61, cubic=True) * (repeat, repeat, repeat)
    rng = np.random.default_rng(0)
    result = []
    for _ in range(count):
        copy = cell.copy()
        copy.positions += rng.normal(0, 0.02, copy.positions.shape)
        result.append(copy)
    return result


def main(arguments) -> None:
    sys.path.insert(0, str(REPO))
    from aiida_mlip_autopipe.active_learning.settings import ExplorationSettings, SelectionSettings
    from aiida_mlip_autopipe.jobscripts import pacemaker_io

    scripts = Path(pacemaker_io.__file__).parent
    cells = starts(arguments.atoms, arguments.starts)
    print(f'{len(cells)} fcc Cu cells of {len(cells[0])} atoms, {arguments.steps} steps at 300 and 600 K each')
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name in ('explore.py', 'pacemaker_io.py'):
            shutil.copy(scripts / name, folder / name)
        shutil.copy(SHARED_RUN / 'output_potential.yaml', folder / 'potential.yaml')
        shutil.copy(SHARED_RUN / 'output_potential.asi', folder / 'potential.asi')
        np.savez(folder / 'structures.npz', **pacemaker_io.atoms_arrays(cells))
        (folder / 'alone.py').write_text(CALCULATOR_ALONE)
        alone = subprocess.run(
            [str(PACEMAKER_PYTHON), 'alone.py', str(arguments.steps)],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        )
        print(f"pyace's calculator alone (1 process, no active set): {float(alone.stdout.split()[-1]):.1f} steps/s")
        for processes in arguments.processes:
            parameters = {
                'potential': 'potential.yaml',
                'active_set': 'potential.asi',
                'structures': 'structures.npz',
                'exploration': ExplorationSettings(
                    steps=arguments.steps, temperatures_K=[300.0, 600.0], heating_fraction=0.0
                ).model_dump(),
                'selection': SelectionSettings(gamma_lo=1e6, gamma_hi=1e7).model_dump(),
                'min_distances': {},
                'processes': processes,
            }
            (folder / 'parameters.json').write_text(json.dumps(parameters))
            started = time.perf_counter()
            subprocess.run(
                [str(PACEMAKER_PYTHON), 'explore.py', 'parameters.json'], cwd=folder, check=True, capture_output=True
            )
            wall = time.perf_counter() - started
            summary = json.loads((folder / 'exploration.json').read_text())
            print(
                f'explore.py with the grade, {processes} process(es): {summary["explored_steps"]} steps in '
                f'{wall:.1f} s (with start-up) = {summary["explored_steps"] / wall:.1f} steps/s'
            )


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--atoms', type=int, default=108)
    parser.add_argument('--starts', type=int, default=4)
    parser.add_argument('--steps', type=int, default=100)
    parser.add_argument('--processes', type=int, nargs='+', default=[1, 2])
    main(parser.parse_args())
