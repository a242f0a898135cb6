"""Benchmark: the active-learning loop against random sampling at the same labelling budget, over seeds and systems
(EMT labels), with an independent hot-MD test set per system.

* Systems (``--systems``): ``cu`` (fcc Cu, 16 functions per element), ``cualni`` (Cu/Al/Ni, random fcc alloys, 32
  functions per element), ``cu64`` (Cu with a realistic basis: 64 functions per element), ``cuag`` (Cu/Ag, a binary
  with a 13 % lattice mismatch, 16 functions per element: not used to choose any default). The target is the
  settings' ``number_of_functions_per_element``; the loop's default ``functions_schedule`` grows the basis to it.
* Per system and seed: the first fit's data are 20 (``--initial``) strained, rattled 4-atom fcc cells labelled with
  EMT (16 train, 4 test); the starting configurations of the exploration are 4 fcc cells of 4-32 atoms (random
  compositions); the loop runs with the plugin's defaults for exploration, selection, guards, calibration and basis
  schedule except the temperatures (600, 1200 K), ``steps`` 150 and ``max_per_iteration`` (``--per-iteration``); EMT
  labels.
* Random sampling: the same starts, deformations and temperatures, but MD with EMT itself (the "true" dynamics);
  snapshots drawn at random, as many as the loop labelled up to each iteration and twice as many; fitted on the same
  first training structures with the functions per element that the loop's basis schedule gives a training set of
  that size (the same fit policy: the two differ only in their data).
* The test: hot MD (1800 K, hotter than the exploration) of 4 other cells of 8-32 atoms with EMT, every 20th step:
  independent of every fit. Force RMSE per component (meV/Å) and energy RMSE (meV/atom) of each potential's
  ``.yace`` through ``get_calculator``.
* The headline: for every loop budget b from the second iteration on, the labels the loop needs to reach random
  sampling's error at 2b, over 2b (mean over seeds; <= 0.5 meets the target of issue #18; ``>1`` where the loop
  never reaches it), and the same from the mean curves (the loop's mean error per iteration against random
  sampling's mean error at 2b).

Usage::

    python benchmarks/active_learning.py --quick          # cualni and cu64, 3 seeds, 3 iterations
    python benchmarks/active_learning.py --quick --systems cualni --seeds 3
    python benchmarks/active_learning.py                  # all systems, 3 seeds, 5 iterations
    python benchmarks/active_learning.py --systems cu64 --seeds 5 --iterations 8
    python benchmarks/active_learning.py --quick --systems cu64 --initial 130   # 64 functions from the first fit

Prints the tables (markdown) and writes ``benchmarks/_work/active_learning_<systems>.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time

import numpy as np
from _common import REPO, WORK, ensure_profile, pacemaker_code

SYSTEMS = {
    'cu': {'elements': ('Cu',), 'functions': 16},
    'cualni': {'elements': ('Cu', 'Al', 'Ni'), 'functions': 32},
    'cu64': {'elements': ('Cu',), 'functions': 64},
    'cuag': {'elements': ('Cu', 'Ag'), 'functions': 16},
}
TEMPERATURES = (600.0, 1200.0)
#: the first fit's structures (``--initial``)
DEFAULT_INITIAL = 20
LATTICE = {'Cu': 3.61, 'Al': 4.05, 'Ni': 3.52, 'Ag': 4.09}


def cells(elements, count: int, seed: int, repeats=((1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 2, 2))) -> list:
    """``count`` fcc cells with random compositions over ``elements`` (4-32 atoms), lattice constants spread 2 %."""
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    result = []
    for index in range(count):
        atoms = bulk('Cu', 'fcc', a=1.0, cubic=True) * repeats[index % len(repeats)]
        symbols = rng.choice(elements, size=len(atoms))
        atoms.set_chemical_symbols(symbols)
        lattice = float(np.mean([LATTICE[s] for s in symbols])) * (1 + rng.uniform(-0.02, 0.02))
        atoms.set_cell(np.asarray(atoms.cell) * lattice, scale_atoms=True)
        result.append(atoms)
    return result


def emt_md(starts: list, temperatures, steps: int, every: int, seed: int) -> list:
    """Snapshots (every ``every`` steps) of Langevin MD with EMT, labelled with EMT energy and forces."""
    from ase import units
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    rng = np.random.default_rng(seed)
    snapshots = []
    for cell in starts:
        for temperature in temperatures:
            atoms = cell.copy()
            atoms.positions += rng.normal(0, 0.03, atoms.positions.shape)
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


def seed_sets(elements, seed: int, steps: int) -> tuple[list, list, list]:
    """The starts of the exploration, the independent hot-MD test and random sampling's pool of EMT-MD snapshots
    (every step of the starts at the exploration's temperatures) of one seed."""
    starts = cells(elements, 4, seed=200 + seed)
    hot = emt_md(
        cells(elements, 4, seed=300 + seed, repeats=((2, 1, 1), (2, 2, 1), (2, 2, 2))), (1800.0,), 100, 20, 400
    )
    return starts, hot, emt_md(starts, TEMPERATURES, steps, 1, seed=500 + seed)


def final_functions(result: dict, default: int) -> int:
    """Functions per element of the loop's last fit (the basis only grows): ``--equal-optimisation`` fits with them."""
    return max(entry['functions'] or default for entry in result['loop'])


def scheduled_functions(structures: int, target: int) -> int:
    """Functions per element that the loop's default basis schedule gives a fit on ``structures`` training
    structures: random sampling fits with the same policy, so that the two differ only in their data."""
    from aiida_mlip_autopipe.active_learning.settings import RefitSettings, functions_for

    return functions_for(RefitSettings().functions_schedule, structures, target)


def errors(potential, test: list) -> tuple[float, float]:
    """Energy RMSE (meV/atom) and force RMSE per component (meV/Å) of a potential node on labelled ``test``."""
    from aiida_mlip_autopipe import get_calculator

    calculator = get_calculator(potential)
    energy, forces = [], []
    for atoms in test:
        copy = atoms.copy()
        copy.calc = calculator
        energy.append((copy.get_potential_energy() - atoms.get_potential_energy()) / len(atoms))
        forces.append((copy.get_forces() - atoms.get_forces()).ravel())
    return (
        1000 * float(np.sqrt(np.mean(np.square(energy)))),
        1000 * float(np.sqrt(np.mean(np.square(np.concatenate(forces))))),
    )


def settings(functions: int, maxiter: int) -> dict:
    """The ``moderate`` protocol's basis with a 5 Å cutoff, ``functions`` per element (the target), and its loss."""
    return {
        'potential': {
            'bonds': {'ALL': {'radbase': 'SBessel', 'radparameters': [5.25], 'rcut': 5.0, 'dcut': 0.01}},
            'functions': {
                'number_of_functions_per_element': functions,
                'ALL': {'nradmax_by_orders': [15, 6, 4, 3], 'lmax_by_orders': [0, 4, 3, 2]},
            },
        },
        'fit': {'maxiter': maxiter, 'loss': {'kappa': 0.3, 'L1_coeffs': 1e-8, 'L2_coeffs': 1e-8}},
        'backend': {'batch_size': 100, 'display_step': 50},
    }


def run_loop(code, initial, starts, arguments, functions: int, seed: int):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlip_autopipe.workflows.active_learning import PacemakerActiveLearningWorkChain

    builder = PacemakerActiveLearningWorkChain.get_builder()
    builder.training.code = code
    builder.training.training_sets = {'initial': initial}
    builder.training.settings = orm.Dict(settings(functions, arguments.maxiter))
    builder.training.options = orm.Dict({'resources': {'num_machines': 1}})
    builder.training.min_structures = orm.Int(10)
    builder.training.test_fraction = orm.Float(0.2)
    builder.training.plots = orm.Bool(False)
    builder.structures = {f'start_{index:02d}': orm.StructureData(ase=atoms) for index, atoms in enumerate(starts)}
    builder.exploration = orm.Dict(
        {
            'temperatures_K': list(TEMPERATURES),
            'steps': arguments.steps,
            'seed': seed,
            **json.loads(arguments.exploration),
        }
    )
    builder.selection = orm.Dict({'max_per_iteration': arguments.per_iteration, **json.loads(arguments.selection)})
    builder.convergence = orm.Dict({'fraction_above_gamma_lo': 0.0})
    builder.labeller = orm.Str('ase:emt')
    builder.max_iterations = orm.Int(arguments.iterations)
    started = time.perf_counter()
    _, node = run_get_node(builder)
    if not node.is_finished_ok:
        raise SystemExit(f'loop failed [{node.exit_status}]: {node.exit_message}')
    return node, time.perf_counter() - started


def fit_random(code, first, snapshots: list, count: int, seed: int, functions: int, maxiter: int):
    """A fit on the loop's first training structures (``first``: its first training workflow, whose test set it
    keeps) plus ``count`` snapshots drawn at random (the benchmark's ``seed`` and ``count`` seed the draw)."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlip_autopipe.data.training_set import TrainingSetData
    from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain

    first_train, test_set = first.outputs.training_set, first.outputs.test_set
    draw = np.random.default_rng(seed * 1000 + count)
    chosen = draw.choice(len(snapshots), size=min(count, len(snapshots)), replace=False)
    sample = TrainingSetData.from_atoms([snapshots[index] for index in sorted(chosen)]).store()
    _, node = run_get_node(
        PacemakerTrainingWorkChain,
        code=code,
        training_sets={'first': first_train, 'random': sample},
        test_set=test_set,
        settings=orm.Dict(settings(functions, maxiter)),
        options=orm.Dict({'resources': {'num_machines': 1}}),
        min_structures=orm.Int(10),
        plots=orm.Bool(False),
    )
    if not node.is_finished_ok:
        raise SystemExit(f'random fit failed [{node.exit_status}]: {node.exit_message}')
    return node


def one_seed(code, system: str, seed: int, arguments) -> dict:
    """The loop and random sampling for one system and seed."""
    from aiida import orm

    from aiida_mlip_autopipe.data.training_set import TrainingSetData
    from aiida_mlip_autopipe.demo.emt import emt_structures

    elements, functions = SYSTEMS[system]['elements'], SYSTEMS[system]['functions']
    initial = TrainingSetData.from_atoms(emt_structures(arguments.initial, elements=elements, seed=100 + seed)).store()
    starts, hot, pool = seed_sets(elements, seed, arguments.steps)
    loop, wall = run_loop(code, initial, starts, arguments, functions, seed)
    rows = loop.outputs.iterations.get_list()
    result = {'system': system, 'seed': seed, 'loop_wall_s': wall, 'loop': [], 'random': [], 'rows': rows}
    total, current = 0, None
    for row in rows:
        total += row.get('added', 0)
        if row.get('training') is None:
            continue
        if row.get('accepted', True):  # a refused refit leaves the previous potential in effect
            current = row['training']
        energy, force = errors(orm.load_node(current).outputs.potential, hot)
        result['loop'].append(
            {
                'iteration': row['iteration'],
                'labels': total,
                'accepted': row.get('accepted'),
                'functions': row.get('functions'),
                'miss_rate': row.get('miss_rate'),
                'rmse_energy_hot': energy,
                'rmse_forces_hot': force,
            }
        )
    first = orm.load_node(rows[0]['training'])
    budgets = sorted({entry['labels'] for entry in result['loop'] if entry['labels']})
    if arguments.quick:  # random fits from the second iteration's budget on (the headline's), and twice them
        budgets = budgets[1:]
    first_size = len(first.outputs.training_set)
    for count in sorted(set(budgets) | {2 * budget for budget in budgets}):
        scheduled = scheduled_functions(first_size + count, functions)
        node = fit_random(code, first, pool, count, seed, scheduled, arguments.maxiter)
        energy, force = errors(node.outputs.potential, hot)
        result['random'].append(
            {'labels': count, 'functions': scheduled, 'rmse_energy_hot': energy, 'rmse_forces_hot': force}
        )
    return result


def labels_needed(loop: list, target: float) -> float | None:
    """The labels the loop needs to reach ``target`` force error (linear in between its budgets; None: never)."""
    points = sorted((entry['labels'], entry['rmse_forces_hot']) for entry in loop)
    for (b0, e0), (b1, e1) in itertools.pairwise(points):
        if e0 <= target:
            return b0
        if e1 <= target:
            return b0 + (b1 - b0) * (e0 - target) / (e0 - e1)
    return points[-1][0] if points and points[-1][1] <= target else None


def in_effect(results: list[dict]) -> list[dict]:
    """After a refused refit the previous potential stays in effect: its errors stand for that budget."""
    for result in results:
        for previous, entry in itertools.pairwise(result['loop']):
            if entry.get('accepted') is False:
                entry['rmse_forces_hot'], entry['rmse_energy_hot'] = (
                    previous['rmse_forces_hot'],
                    previous['rmse_energy_hot'],
                )
    return results


def summarise(results: list[dict]) -> str:
    """Markdown tables: per system, mean and standard deviation over seeds per iteration, and the headline."""
    results = in_effect(results)
    lines = []
    for system in sorted({result['system'] for result in results}):
        runs = [result for result in results if result['system'] == system]
        lines.append(f'\n**{system}** ({len(runs)} seeds: {", ".join(str(run["seed"]) for run in runs)})\n')
        lines.append(
            '| iteration | labels (mean) | functions (random 2x) | loop F hot | random F hot, same labels | '
            'random F hot, 2x labels | loop E hot | random E hot | miss rate | labels needed / 2x | from the means |'
        )
        lines.append('|---|---|---|---|---|---|---|---|---|---|---|')
        iterations = min(len(run['loop']) for run in runs)
        mean_curve = [  # the loop's mean labels and mean force error per iteration: the headline from the means
            {
                'labels': float(np.mean([run['loop'][index]['labels'] for run in runs])),
                'rmse_forces_hot': float(np.mean([run['loop'][index]['rmse_forces_hot'] for run in runs])),
            }
            for index in range(iterations)
        ]
        for index in range(iterations):
            loop = [run['loop'][index] for run in runs]
            same, double, ratios, energy_random = [], [], [], []
            random_functions: set[str] = set()
            for run, entry in zip(runs, loop, strict=True):
                by_count = {item['labels']: item for item in run['random']}
                if entry['labels'] in by_count:
                    same.append(by_count[entry['labels']]['rmse_forces_hot'])
                    energy_random.append(by_count[entry['labels']]['rmse_energy_hot'])
                if 2 * entry['labels'] in by_count and entry['labels']:
                    random_functions.add(str(by_count[2 * entry['labels']].get('functions', '?')))
                    target = by_count[2 * entry['labels']]['rmse_forces_hot']
                    double.append(target)
                    needed = labels_needed(run['loop'], target)
                    ratios.append(needed / (2 * entry['labels']) if needed is not None else float('inf'))

            def fmt(values, digits=0):
                values = [value for value in values if value is not None]
                if not values:
                    return '-'
                return f'{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}'

            misses = [entry['miss_rate'] for entry in loop if entry['miss_rate'] is not None]
            finite = [ratio for ratio in ratios if np.isfinite(ratio)]
            ratio_text = '-'
            if ratios:
                ratio_text = (
                    f'{np.mean(finite):.2f}'
                    if len(finite) == len(ratios)
                    else f'>1 ({len(finite)}/{len(ratios)} reach)'
                )
            means_text = '-'
            if double and len(double) == len(runs):
                needed = labels_needed(mean_curve, float(np.mean(double)))
                means_text = f'{needed / (2 * mean_curve[index]["labels"]):.2f}' if needed is not None else '>1'
            lines.append(
                f'| {loop[0]["iteration"]} | {np.mean([e["labels"] for e in loop]):.1f} | '
                f'{"/".join(sorted({str(e["functions"]) for e in loop}))}'
                f'{" (" + "/".join(sorted(random_functions)) + ")" if random_functions else ""} | '
                f'{fmt([e["rmse_forces_hot"] for e in loop])} | {fmt(same)} | {fmt(double)} | '
                f'{fmt([e["rmse_energy_hot"] for e in loop], 1)} | {fmt(energy_random, 1)} | '
                f'{fmt(misses, 2) if misses else "-"} | {ratio_text} | {means_text} |'
            )
        lines.append(
            f'\nloop wall time: {np.nanmean([run["loop_wall_s"] or np.nan for run in runs]):.0f} s per seed; '
            'stop reasons: '
            f'{", ".join(run["rows"][-1].get("stop_reason") or "-" for run in runs)}'
        )
    return '\n'.join(lines)


def equal_optimisation(arguments) -> None:
    """Random sampling at twice the loop's final budget, fitted from scratch with as many optimiser iterations as
    the loop's chain of continued fits had in all (``maxiter`` x fits): is the loop ahead because of its labels or
    because its potential was optimised longer?"""
    ensure_profile(arguments.profile)  # before aiida is imported: it sets AIIDA_PATH
    from aiida import load_profile, orm

    load_profile(arguments.profile)
    code = pacemaker_code()
    results = json.loads(open(arguments.equal_optimisation).read())
    for result in results:
        if arguments.seed_only is not None and result['seed'] != arguments.seed_only:
            continue
        system, seed = result['system'], result['seed']
        rows = result['rows']
        fits = sum(1 for row in rows if row.get('training') is not None)
        first = orm.load_node(rows[0]['training'])
        _, hot, pool = seed_sets(SYSTEMS[system]['elements'], seed, arguments.steps)
        final = result['loop'][-1]
        count = 2 * final['labels']
        functions, maxiter = final_functions(result, SYSTEMS[system]['functions']), arguments.maxiter * fits
        node = fit_random(code, first, pool, count, seed, functions, maxiter)
        energy, force = errors(node.outputs.potential, hot)
        same = {entry['labels']: entry for entry in result['random']}.get(count)
        shorter = same['rmse_forces_hot'] if same else float('nan')
        print(
            f'{system} seed {seed}: random at {count} labels, {maxiter} iterations: F {force:.0f} meV/Å, '
            f'E {energy:.1f} meV/atom (with {arguments.maxiter}: F {shorter:.0f}); the loop at {final["labels"]} '
            f'labels ({fits} fits of {arguments.maxiter}): F {final["rmse_forces_hot"]:.0f}',
            flush=True,
        )


def main(arguments) -> None:
    if arguments.summarise:
        print(summarise(json.loads(open(arguments.summarise).read())))
        return
    if arguments.equal_optimisation:
        equal_optimisation(arguments)
        return
    ensure_profile(arguments.profile)
    from aiida import load_profile

    load_profile(arguments.profile)
    sys.path.insert(0, str(REPO))
    code = pacemaker_code()
    results = []
    started = time.perf_counter()
    name = '_'.join(arguments.systems) + ('_quick' if arguments.quick else '')
    name += f'_initial{arguments.initial}' if arguments.initial != DEFAULT_INITIAL else ''
    name += f'_{arguments.tag}' if arguments.tag else ''
    for system in arguments.systems:
        for seed in arguments.seed_list or range(arguments.seeds):
            result = one_seed(code, system, seed, arguments)
            results.append(result)
            print(
                f'{system} seed {seed}: loop {[round(e["rmse_forces_hot"]) for e in result["loop"]]} meV/Å at '
                f'{[e["labels"] for e in result["loop"]]} labels; random '
                f'{[(e["labels"], round(e["rmse_forces_hot"])) for e in result["random"]]} '
                f'({time.perf_counter() - started:.0f} s so far)',
                flush=True,
            )
            (WORK / f'active_learning_{name}.json').write_text(json.dumps(results, indent=1, default=str))
    print(summarise(results))
    print(f'\ntotal {time.perf_counter() - started:.0f} s')


if __name__ == '__main__':
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--systems', nargs='+', choices=sorted(SYSTEMS), default=sorted(SYSTEMS))
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--seed-list', type=int, nargs='+', help='run these seeds (instead of 0 .. seeds - 1)')
    parser.add_argument(
        '--initial',
        type=int,
        default=DEFAULT_INITIAL,
        help="the first fit's EMT structures (4-atom fcc cells; 80 %% train): e.g. 130 gives a first training set of "
        "104, for which the loop's default schedule takes 64 functions per element (cu64's target) from the start",
    )
    parser.add_argument('--iterations', type=int, default=5)
    parser.add_argument('--per-iteration', type=int, default=8, help='selection.max_per_iteration')
    parser.add_argument('--steps', type=int, default=150, help='MD steps per trajectory')
    parser.add_argument('--maxiter', type=int, default=100, help="pacemaker's fit.maxiter")
    parser.add_argument(
        '--quick',
        action='store_true',
        help='cualni and cu64, 3 iterations, 5 per iteration, 60 MD steps, 150 fit iterations, random fits from the '
        "second iteration's budget on and twice them",
    )
    parser.add_argument(
        '--selection',
        default='{}',
        help='JSON: the loop\'s selection settings besides max_per_iteration, e.g. {"fill_order": "first_crossing"}',
    )
    parser.add_argument(
        '--exploration',
        default='{}',
        help='JSON: the loop\'s exploration settings besides temperatures_K, steps and seed, e.g. {"rattle": 0.1}',
    )
    parser.add_argument('--tag', help='appended to the results file name (e.g. the settings compared)')
    parser.add_argument('--summarise', metavar='JSON', help='print the tables of a results file and stop')
    parser.add_argument(
        '--equal-optimisation',
        metavar='JSON',
        help="refit random sampling at twice each loop's final budget with the loop's total optimiser iterations",
    )
    parser.add_argument('--seed-only', type=int, help='with --equal-optimisation: this seed only')
    parser.add_argument(
        '--profile', default='benchmarks', help='AiiDA profile under benchmarks/_work (one run at a time per profile)'
    )
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.systems = ['cualni', 'cu64'] if len(arguments.systems) == len(SYSTEMS) else arguments.systems
        arguments.iterations, arguments.per_iteration, arguments.steps, arguments.maxiter = 3, 5, 60, 150
    main(arguments)
