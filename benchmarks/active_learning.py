"""Benchmark: the active-learning loop against random sampling at the same labelling budget (Cu, EMT labels).

* Start: 20 strained, rattled 4-atom Cu cells labelled with EMT (the first fit: 16 train, 4 test); 20 starting
  configurations for the exploration (fcc, hcp, bcc cells of 2-8 atoms, lattice constants spread by ±4 %).
* (a) The loop: MD at 600 K and 1200 K (100 steps of 2 fs, strain 3 %, rattle 0.05 Å) with the current potential
  and its active set; up to 10 structures per iteration selected D-optimally above gamma_lo = 1.5 (trajectories
  stop at gamma_hi = 20); EMT labels; every fit from scratch with the same settings (``retrain_from_scratch``), so
  that (a) and (b) differ only in the data.
* (b) Random sampling: the same starting configurations, deformations and temperatures, but MD with EMT itself (the
  "true" dynamics); snapshots drawn at random, as many as the loop labelled up to each iteration, and twice the
  final number; fitted on the same first 16 structures plus the snapshots, same settings.
* The test: an independent hot MD set, 1800 K (hotter than the exploration), 10 other starting cells of 8-16 atoms,
  every 25th of 250 steps: 100 configurations with EMT energies and forces. Errors of each potential's ``.yace``
  through ``get_calculator`` (energies on the label scale).

Usage: python benchmarks/active_learning.py [--iterations N] [--functions F] [--maxiter M]
(prints the tables; also _work/active_learning_F.json). Defaults: 5 iterations, 16 functions per element, 60 fit
iterations.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from _common import REPO, WORK, ensure_profile, pacemaker_code

SETTINGS = {'potential': {'functions': {'number_of_functions_per_element': 16}}, 'fit': {'maxiter': 60}}
TEMPERATURES = (600.0, 1200.0)
EXPLORATION = {
    'temperatures_K': list(TEMPERATURES),
    'steps': 100,
    'timestep_fs': 2.0,
    'strain': 0.03,
    'rattle': 0.05,
    'sample_interval': 5,
}
SELECTION = {'gamma_lo': 1.5, 'gamma_hi': 20.0, 'max_per_iteration': 10}


def starting_cells(count: int, seed: int, sizes=(1, 2)) -> list:
    """``count`` Cu cells: fcc / hcp / bcc, 2-16 atoms, lattice constants spread by ±4 %."""
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    cells = []
    for index in range(count):
        scale = 1 + rng.uniform(-0.04, 0.04)
        kind = ('fcc', 'fcc', 'hcp', 'bcc')[index % 4]
        if kind == 'fcc':
            atoms = bulk('Cu', 'fcc', a=3.61 * scale, cubic=True)
        elif kind == 'hcp':
            atoms = bulk('Cu', 'hcp', a=2.56 * scale) * (1, 1, 2)
        else:
            atoms = bulk('Cu', 'bcc', a=2.87 * scale, cubic=True) * (2, 1, 1)
        cells.append(atoms * (sizes[index % len(sizes)], 1, 1))
    return cells


def emt_md(cells: list, temperatures, steps: int, every: int, seed: int, strain: float, rattle: float) -> list:
    """Snapshots (every ``every`` steps) of Langevin MD with EMT, labelled with EMT energy and forces."""
    from ase import units
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    rng = np.random.default_rng(seed)
    snapshots = []
    for cell in cells:
        for temperature in temperatures:
            atoms = cell.copy()
            deformation = np.eye(3) + strain * rng.uniform(-1, 1, (3, 3))
            atoms.set_cell(np.asarray(atoms.cell) @ (0.5 * (deformation + deformation.T)), scale_atoms=True)
            atoms.positions += rng.normal(0, rattle, atoms.positions.shape)
            atoms.calc = EMT()
            MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
            dynamics = Langevin(
                atoms, 2 * units.fs, temperature_K=temperature, friction=0.02 / units.fs, fixcm=False, rng=rng
            )
            for step in range(1, steps + 1):
                dynamics.run(1)
                if step % every == 0:
                    frame = atoms.copy()
                    frame.calc = SinglePointCalculator(
                        frame, energy=atoms.get_potential_energy(), forces=atoms.get_forces()
                    )
                    snapshots.append(frame)
    return snapshots


def errors(potential, test: list) -> tuple[float, float]:
    """Energy RMSE (meV/atom) and force RMSE per component (meV/Å) of a potential node on labelled ``test``."""
    from aiida_mlip_autopipe import get_calculator

    calculator = get_calculator(potential)
    energy, forces = [], []
    for atoms in test:
        reference_energy, reference_forces = atoms.get_potential_energy(), atoms.get_forces()
        copy = atoms.copy()
        copy.calc = calculator
        energy.append((copy.get_potential_energy() - reference_energy) / len(atoms))
        forces.append((copy.get_forces() - reference_forces).ravel())
    return 1000 * float(np.sqrt(np.mean(np.square(energy)))), 1000 * float(
        np.sqrt(np.mean(np.square(np.concatenate(forces))))
    )


def run_loop(code, initial, starts, iterations: int):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlip_autopipe.workflows.active_learning import PacemakerActiveLearningWorkChain

    builder = PacemakerActiveLearningWorkChain.get_builder()
    builder.training.code = code
    builder.training.training_sets = {'initial': initial}
    builder.training.settings = orm.Dict(SETTINGS)
    builder.training.options = orm.Dict({'resources': {'num_machines': 1}})
    builder.training.min_structures = orm.Int(10)
    builder.training.test_fraction = orm.Float(0.2)
    builder.training.plots = orm.Bool(False)
    builder.structures = {f'start_{index:02d}': orm.StructureData(ase=atoms) for index, atoms in enumerate(starts)}
    builder.exploration = orm.Dict(EXPLORATION)
    builder.selection = orm.Dict(SELECTION)
    builder.convergence = orm.Dict({'fraction_above_gamma_lo': 0.0})
    builder.retrain_from_scratch = orm.Bool(True)
    builder.labeller = orm.Str('ase:emt')
    builder.max_iterations = orm.Int(iterations)
    started = time.perf_counter()
    _, node = run_get_node(builder)
    if not node.is_finished_ok:
        raise SystemExit(f'loop failed [{node.exit_status}]: {node.exit_message}')
    return node, time.perf_counter() - started


def fit_random(code, first_train, test_set, snapshots: list, count: int, seed: int):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlip_autopipe.data.training_set import TrainingSetData
    from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain

    chosen = np.random.default_rng(seed).choice(len(snapshots), size=count, replace=False)
    sample = TrainingSetData.from_atoms([snapshots[index] for index in sorted(chosen)]).store()
    started = time.perf_counter()
    _, node = run_get_node(
        PacemakerTrainingWorkChain,
        code=code,
        training_sets={'first': first_train, 'random': sample},
        test_set=test_set,
        settings=orm.Dict(SETTINGS),
        options=orm.Dict({'resources': {'num_machines': 1}}),
        min_structures=orm.Int(10),
        plots=orm.Bool(False),
    )
    if not node.is_finished_ok:
        raise SystemExit(f'random fit failed [{node.exit_status}]: {node.exit_message}')
    return node, time.perf_counter() - started


def main(iterations: int, functions: int, maxiter: int) -> None:
    SETTINGS['potential']['functions']['number_of_functions_per_element'] = functions
    SETTINGS['fit']['maxiter'] = maxiter
    print(f'settings: {json.dumps(SETTINGS)}')
    ensure_profile()
    from aiida import load_profile

    load_profile('benchmarks')
    sys.path.insert(0, str(REPO))
    from aiida_mlip_autopipe.data.training_set import TrainingSetData
    from aiida_mlip_autopipe.demo.emt import emt_structures

    code = pacemaker_code()
    initial = TrainingSetData.from_atoms(emt_structures(20, elements=('Cu',), seed=1)).store()
    starts = starting_cells(20, seed=2)
    hot_test = emt_md(starting_cells(10, seed=3, sizes=(2, 4)), (1800.0,), 250, 25, seed=4, strain=0.03, rattle=0.05)
    print(f'hot MD test set: {len(hot_test)} configurations at 1800 K, {sum(len(a) for a in hot_test)} atoms')

    loop, loop_wall = run_loop(code, initial, starts, iterations)
    rows = loop.outputs.iterations.get_list()
    fits = {row['iteration']: row['training'] for row in rows if row.get('training')}
    from aiida import orm

    print(f'\n(a) loop: PacemakerActiveLearningWorkChain<{loop.pk}>, {loop_wall:.0f} s')
    print('iter  explored  >gamma_lo  max gamma  selected  labelled  labels total  E hot meV/atom  F hot meV/Å  wall s')
    results = {'loop': [], 'random': [], 'loop_wall_s': loop_wall}
    total = 0
    for row in rows:
        total += row.get('labelled', 0) if row['iteration'] in fits else 0
        if row['iteration'] not in fits:
            continue
        energy, force = errors(orm.load_node(fits[row['iteration']]).outputs.potential, hot_test)
        results['loop'].append({**row, 'labels': total, 'rmse_energy_hot': energy, 'rmse_forces_hot': force})
        print(
            f'{row["iteration"]:4d}  {row.get("explored_steps", 0):8d}  {row.get("fraction_above_gamma_lo", 0):9.1%}  '
            f'{row.get("max_gamma") or 0:9.2f}  {row.get("selected", 0):8d}  {row.get("labelled", 0):8d}  '
            f'{total:12d}  {energy:14.2f}  {force:11.1f}  {row["wall_time"]:6.0f}'
        )

    first = orm.load_node(fits[0])
    first_train, test_set = first.outputs.training_set, first.outputs.test_set
    snapshots = emt_md(starts, TEMPERATURES, EXPLORATION['steps'], 1, seed=5, strain=0.03, rattle=0.05)
    budgets = sorted({entry['labels'] for entry in results['loop'] if entry['labels']} | {2 * total})
    print(f'\n(b) random MD snapshots (EMT dynamics, pool of {len(snapshots)}) on the same first 16 structures')
    print('labels  E hot meV/atom  F hot meV/Å  fit s')
    for count in budgets:
        node, wall = fit_random(code, first_train, test_set, snapshots, count, seed=count)
        energy, force = errors(node.outputs.potential, hot_test)
        results['random'].append({'labels': count, 'rmse_energy_hot': energy, 'rmse_forces_hot': force, 'wall_s': wall})
        print(f'{count:6d}  {energy:14.2f}  {force:11.1f}  {wall:5.0f}')
    final = results['loop'][-1]
    same = next(entry for entry in results['random'] if entry['labels'] == final['labels'])
    double = results['random'][-1]
    print(
        f'\nloop with {final["labels"]} labels: F {final["rmse_forces_hot"]:.1f} meV/Å, '
        f'E {final["rmse_energy_hot"]:.2f} meV/atom; random with {same["labels"]}: '
        f'F {same["rmse_forces_hot"]:.1f}, E {same["rmse_energy_hot"]:.2f}; '
        f'random with {double["labels"]}: F {double["rmse_forces_hot"]:.1f}, E {double["rmse_energy_hot"]:.2f}'
    )
    name = f'active_learning_{SETTINGS["potential"]["functions"]["number_of_functions_per_element"]}.json'
    (WORK / name).write_text(json.dumps(results, indent=1, default=str))


if __name__ == '__main__':
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iterations', type=int, default=5)
    parser.add_argument('--functions', type=int, default=16, help='number_of_functions_per_element')
    parser.add_argument('--maxiter', type=int, default=60, help="pacemaker's fit.maxiter")
    arguments = parser.parse_args()
    main(arguments.iterations, arguments.functions, arguments.maxiter)
