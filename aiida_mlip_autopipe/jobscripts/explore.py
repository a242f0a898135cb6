"""Explore with a potential and select what to label: MD with pyace's calculator and the active set, the
extrapolation grade gamma per atom at every step, then D-optimal selection (pacemaker's ``pace_select`` MaxVol).

Copied into every exploration job beside ``pacemaker_io.py`` and run with **the Python interpreter of the pacemaker
installation** (pyace, ase, numpy, pandas), on whichever computer that is. It needs neither AiiDA nor the plugin.

Usage::

    python explore.py parameters.json

``parameters.json`` names the potential (B-basis YAML), the active set (.asi), the starting structures (stable
``.npz`` of ``pacemaker_io``) and the exploration and selection settings. Writes:

* ``exploration.json``: per trajectory (start, temperature, steps run, why it stopped, max gamma per step) and the
  totals (explored steps, steps above gamma_lo, candidates, selected);
* ``selected.npz``: the selected structures (``numbers``, ``positions``, ``cells``, ``pbc``, ``natoms``) with, per
  structure, ``trajectory``, ``step``, ``gamma`` (max over atoms) and ``temperature``, and per atom ``atom_gamma``.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from pacemaker_io import atoms_arrays, build_atoms, load_arrays

SUMMARY = 'exploration.json'
SELECTED = 'selected.npz'
CALIBRATION = 'calibration.npz'
#: the fraction of the target temperature the heating starts from
HEATING_START = 0.1


def deformed(atoms, strain: float, rattle: float, rng):
    """A copy of ``atoms`` with a random symmetric strain (up to ``strain``) and Gaussian rattle (``rattle`` Å)."""
    atoms = atoms.copy()
    if strain > 0:
        deformation = np.eye(3) + strain * rng.uniform(-1.0, 1.0, size=(3, 3))
        deformation = 0.5 * (deformation + deformation.T)
        atoms.set_cell(np.asarray(atoms.cell) @ deformation, scale_atoms=True)
    if rattle > 0:
        atoms.positions += rng.normal(0.0, rattle, size=atoms.positions.shape)
    return atoms


def dynamics(atoms, settings: dict, temperature: float, rng, start_temperature: float | None = None):
    """The ASE integrator of the ensemble: Langevin (``nvt``) or velocity Verlet (``nve``)."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.verlet import VelocityVerlet

    try:  # ASE >= 3.29
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta  # noqa: N813
    thermalize_momenta(atoms, temperature_K=start_temperature or temperature, rng=rng)
    timestep = settings['timestep_fs'] * units.fs
    if settings['ensemble'] == 'nve':
        return VelocityVerlet(atoms, timestep)
    friction = settings['friction_per_fs'] / units.fs
    return Langevin(atoms, timestep, temperature_K=temperature, friction=friction, fixcm=False, rng=rng)


def pair_key(a: int, b: int) -> str:
    """The key of an element pair in ``min_distances`` (atomic numbers, smaller first: ``'29-29'``)."""
    return f'{min(a, b)}-{max(a, b)}'


def too_close(atoms, bounds: dict, ratio: float) -> float | None:
    """The shortest interatomic distance of ``atoms`` if some pair is closer than ``ratio`` times its bound
    (``bounds``: shortest distance per element pair in the data, ``'*'`` for pairs the data lacks), else None."""
    if ratio <= 0 or not bounds or len(atoms) < 2:
        return None
    from ase.geometry import get_distances

    _, distances = get_distances(atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    numbers = atoms.numbers
    upper = np.triu_indices(len(atoms), k=1)
    pairs = distances[upper]
    limits = np.asarray(
        [bounds.get(pair_key(numbers[i], numbers[j]), bounds.get('*', 0.0)) for i, j in zip(*upper, strict=True)]
    )
    if np.any(pairs < ratio * limits):
        return float(pairs.min())
    return None


class Reservoir:
    """A uniform random sample of ``size`` frames from a stream (Algorithm R): the calibration frames below
    gamma_lo."""

    def __init__(self, size: int, rng):
        self.size, self.rng, self.seen = size, rng, 0
        self.items: list = []
        self.trajectory = 0  # the index of the trajectory whose frames are offered now

    def offer(self, make):
        """Consider one frame (``make()`` builds ``(frame, step, gamma)`` only when it is kept)."""
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append((self.trajectory, *make()))
        else:
            index = int(self.rng.integers(self.seen))
            if index < self.size:
                self.items[index] = (self.trajectory, *make())


def snapshot(atoms, calculator, gamma: float):
    """A copy of the current frame with the potential's energy, forces and per-atom gamma."""
    frame = atoms.copy()
    frame.calc = None
    frame.arrays['gamma'] = np.array(calculator.results['gamma'], dtype=float)
    frame.arrays['predicted_forces'] = np.array(calculator.results['forces'], dtype=float)
    frame.info['predicted_energy'] = float(calculator.results['energy'])
    return frame


def run_trajectory(
    atoms, calculator, temperature: float, settings: dict, selection: dict, rng, steps: int, calibration=None
) -> tuple[dict, list]:
    """Run one MD trajectory of at most ``steps`` steps; return its record and the candidate frames
    (``gamma_lo <= gamma < gamma_hi``: every ``sample_interval``-th step, and with ``edge_frames`` the first frame at
    gamma_lo and the last one before gamma_hi). Frames below gamma_lo are offered to ``calibration``."""
    gamma_lo, gamma_hi = selection['gamma_lo'], selection['gamma_hi']
    edges = settings.get('edge_frames', True)
    atoms.calc = calculator
    heating = int(settings.get('heating_fraction', 0.0) * settings['steps']) if settings['ensemble'] == 'nvt' else 0
    integrator = dynamics(atoms, settings, temperature, rng, HEATING_START * temperature if heating else None)
    gammas, candidates, stop = [], [], 'steps'
    previous, crossed = None, False
    for step in range(steps + 1):
        if step:
            if heating and step <= heating:
                integrator.set_temperature(
                    temperature_K=temperature * (HEATING_START + (1 - HEATING_START) * step / heating)
                )
            try:
                integrator.run(1)
            except Exception as exception:  # e.g. atoms flying apart: the trajectory ends, the others go on
                stop = f'error: {type(exception).__name__}: {exception}'
                break
        else:
            atoms.get_forces()
        gamma = float(np.max(calculator.results['gamma']))
        if not np.isfinite(gamma):  # not recorded: JSON (and PostgreSQL's JSONB) has no inf / NaN
            stop = 'gamma_not_finite'
            break
        gammas.append(gamma)
        if gamma >= gamma_hi:
            stop = 'gamma_hi'
            if edges:  # the stopping frame: early potentials reach gamma_hi on physical configurations (the
                # physical guards judge it); the last frame of the window before it comes after the loop
                candidates.append((snapshot(atoms, calculator, gamma), step, gamma))
            break
        if gamma >= gamma_lo:
            first = not crossed
            crossed = True
            if step % settings['sample_interval'] == 0 or (edges and first):
                candidates.append((snapshot(atoms, calculator, gamma), step, gamma))
                previous = None
            elif edges:
                previous = (snapshot(atoms, calculator, gamma), step, gamma)
        else:
            previous = None
            if calibration is not None and step % settings['sample_interval'] == 0:
                calibration.offer(lambda step=step, gamma=gamma: (snapshot(atoms, calculator, gamma), step, gamma))
    if stop != 'steps' and previous is not None:  # the last frame before the trajectory stopped
        candidates.append(previous)
    record = {
        'temperature_K': temperature,
        'steps': max(len(gammas) - 1, 0),
        'stopped_by': stop,
        'max_gamma': max(gammas) if gammas else None,
        'gamma': gammas,
    }
    return record, candidates


def selection_pool(candidates: list, selection: dict) -> list:
    """The candidates selection chooses from: all of them, or with ``stopping_frames`` off those below gamma_hi
    when there are at least ``max_per_iteration`` of them (the stopping frames are kept when the window offers
    fewer, as for a potential that reaches gamma_hi within a step or two)."""
    if selection.get('stopping_frames', True):
        return candidates
    inside = [candidate for candidate in candidates if candidate[3] < selection['gamma_hi']]
    return inside if len(inside) >= selection['max_per_iteration'] else candidates


def select(
    candidates: list, potential: str, active_set: str, selection: dict, seed: int = 0, starts: list[int] | None = None
) -> list[int]:
    """The candidates to label: D-optimal (``pace_select``'s MaxVol against the active set), the top gammas, or a
    random draw; with ``spread_trajectories`` one per starting structure (``starts``: each trajectory's), then per
    trajectory, before a second from any."""
    limit = selection['max_per_iteration']
    if not candidates or limit == 0:
        return []
    spread = selection.get('spread_trajectories', False)
    if selection['method'] == 'max_gamma':
        order = np.argsort([-gamma for _, _, _, gamma, _ in candidates], kind='stable')
        ranked = [int(index) for index in order]
        return spread_out(candidates, ranked, limit, starts) if spread else ranked[:limit]
    if selection['method'] == 'random':
        ranked = [int(index) for index in np.random.default_rng(seed).permutation(len(candidates))]
        return spread_out(candidates, ranked, limit, starts) if spread else ranked[:limit]
    import pandas as pd
    from pyace import BBasisConfiguration
    from pyace.aceselect import select_structures_maxvol
    from pyace.activelearning import compute_A_active_inverse, load_active_inverse_set

    frame = pd.DataFrame({'ase_atoms': [atoms for atoms, *_ in candidates], 'candidate': range(len(candidates))})
    extra = compute_A_active_inverse(load_active_inverse_set(active_set))
    chosen = select_structures_maxvol(
        frame,
        BBasisConfiguration(potential),
        extra,
        batch_size_option='auto',
        gamma_tolerance=selection['gamma_tolerance'],
        max_structures=-1 if spread else limit,  # ranked by the atoms each brings into the active set
    )
    indices = [int(index) for index in chosen['candidate']]
    indices = spread_out(candidates, indices, limit, starts) if spread else indices[:limit]
    if not selection.get('fill_up', True):
        return indices
    return fill_up(candidates, indices, limit, selection.get('fill_order', 'highest_gamma'))


def first_per_key(ranked: list[int], key, seen=()) -> list[int]:
    """The first of ``ranked`` for each value of ``key`` not in ``seen``, in ``ranked``'s order."""
    taken, first = set(seen), []
    for index in ranked:
        if key(index) not in taken:
            first.append(index)
            taken.add(key(index))
    return first


def spread_out(candidates: list, ranked: list[int], limit: int, starts: list[int] | None = None) -> list[int]:
    """The first ``limit`` of ``ranked``, taking one per starting structure (``starts``: the start of each
    trajectory), then one per trajectory, before a second from any (each pass in ``ranked``'s order)."""

    def trajectory(index: int) -> int:
        return candidates[index][1]

    chosen = first_per_key(ranked, lambda index: starts[trajectory(index)]) if starts else []
    taken = set(chosen)
    chosen += first_per_key([index for index in ranked if index not in taken], trajectory, map(trajectory, chosen))
    taken = set(chosen)
    return (chosen + [index for index in ranked if index not in taken])[:limit]


def fill_up(candidates: list, indices: list[int], limit: int, order: str = 'highest_gamma') -> list[int]:
    """``indices`` filled up to ``limit`` with the other candidates, one per trajectory before a second from any
    (MaxVol against a small basis picks few structures: the active set holds one environment per function and
    element). ``order``: ``highest_gamma`` takes the highest grades first; ``first_crossing`` the earliest frames of a
    trajectory in the window first (where it first reaches gamma_lo), then the lowest grades."""

    def trajectory(index: int) -> int:
        return candidates[index][1]

    chosen = set(indices)
    rest = [index for index in range(len(candidates)) if index not in chosen]
    if order == 'first_crossing':
        rest.sort(key=lambda index: (candidates[index][2], candidates[index][3]))
    else:
        rest.sort(key=lambda index: -candidates[index][3])
    fresh = first_per_key(rest, trajectory, map(trajectory, indices))
    taken = set(fresh)
    return (indices + fresh + [index for index in rest if index not in taken])[:limit]


def write_selected(path: str, candidates: list, indices: list[int]) -> None:
    """Write the selected frames in the stable format, with where each came from."""
    chosen = [candidates[index] for index in indices]
    atoms = [entry[0] for entry in chosen]
    arrays = {
        **atoms_arrays(atoms),
        'trajectory': np.asarray([entry[1] for entry in chosen], dtype=np.int64),
        'step': np.asarray([entry[2] for entry in chosen], dtype=np.int64),
        'gamma': np.asarray([entry[3] for entry in chosen], dtype=float),
        'atom_gamma': np.concatenate([a.arrays['gamma'] for a in atoms]) if atoms else np.zeros(0),
        'temperature': np.asarray([entry[4] for entry in chosen], dtype=float),
        'predicted_energy': np.asarray([a.info['predicted_energy'] for a in atoms], dtype=float),
        'predicted_forces': np.concatenate([a.arrays['predicted_forces'] for a in atoms])
        if atoms
        else np.zeros((0, 3)),
    }
    np.savez(path, **arrays)


def trajectory_groups(settings: dict, starts: int) -> list[tuple[int, float]]:
    """One group per start, temperature and repeat: a trajectory and its restarts (in the order they run)."""
    return [
        (start_index, temperature)
        for start_index in range(starts)
        for temperature in settings['temperatures_K']
        for _ in range(settings['repeats'])
    ]


def run_group(
    starts: list, start_index: int, temperature: float, parameters: dict, calculator, rng, calibration, first_index: int
):
    """A trajectory from ``starts[start_index]`` at ``temperature``, restarted at gamma_hi while its step budget
    lasts; return its records and candidates (trajectory indices from ``first_index``) and the refused candidates."""
    settings, selection = parameters['exploration'], parameters['selection']
    bounds, ratio = parameters.get('min_distances') or {}, selection.get('min_distance_ratio', 0.0)
    records: list[dict] = []
    candidates: list = []
    refused: list = []
    budget, restart = settings['steps'], 0
    while budget > 0:
        atoms = deformed(starts[start_index], settings['strain'], settings['rattle'], rng)
        index = first_index + len(records)
        calibration.trajectory = index
        offer = calibration if calibration.size else None
        record, found = run_trajectory(atoms, calculator, temperature, settings, selection, rng, budget, offer)
        record.update({'start': start_index, 'restart': len(records)})
        records.append(record)
        for frame, step, gamma in found:
            closest = too_close(frame, bounds, ratio)
            if closest is None:
                candidates.append((frame, index, step, gamma, temperature))
            else:
                refused.append({'trajectory': index, 'step': step, 'gamma': gamma, 'min_distance': closest})
        budget -= record['steps'] + 1
        restart += 1
        if record['stopped_by'] == 'steps' or restart > settings.get('restarts', 0):
            break
    return records, candidates, refused


#: The parameters and starting structures of a parallel exploration, set before the workers are forked (they
#: inherit them), and each worker's own calculator.
_WORKER: dict = {}


def _start_worker() -> None:
    """A worker process of a parallel exploration: its own calculator (pyace's is not shared between processes)."""
    from pyace import PyACECalculator

    parameters = _WORKER['parameters']
    _WORKER['calculator'] = PyACECalculator(parameters['potential'])
    _WORKER['calculator'].set_active_set(parameters['active_set'])


def _run_group_in_worker(task: tuple[int, int, float]):
    """One group in a worker: its own random stream (the seed and the group's number) and calibration sample."""
    number, start_index, temperature = task
    parameters = _WORKER['parameters']
    rng = np.random.default_rng([parameters['exploration']['seed'], number])
    calibration = Reservoir(parameters['selection'].get('calibration_samples', 0), rng)
    records, candidates, refused = run_group(
        _WORKER['starts'], start_index, temperature, parameters, _WORKER['calculator'], rng, calibration, 0
    )
    return records, candidates, refused, calibration.items, calibration.seen


def merge_calibration(samples: list[tuple[list, int]], size: int, rng) -> list:
    """A uniform sample of ``size`` frames from per-group reservoirs ``(items, seen)``: each kept item stands for
    ``seen / len(items)`` frames of its group."""
    pool = [(item, seen / len(items)) for items, seen in samples if items for item in items]
    if len(pool) <= size:
        return [item for item, _ in pool]
    weights = np.asarray([weight for _, weight in pool], dtype=float)
    chosen = rng.choice(len(pool), size=size, replace=False, p=weights / weights.sum())
    return [pool[index][0] for index in sorted(chosen)]


def explore(parameters: dict, calculator, processes: int = 1) -> tuple[list, list, list, list]:
    """Every trajectory (start x temperature x repeat, restarted at gamma_hi while its step budget lasts); return
    the trajectory records, the candidates, the calibration frames below gamma_lo and the refused candidates.

    ``processes`` > 1 runs the groups in that many worker processes (at most one per group), each group with its own
    random stream (the trajectories then differ from a serial run with the same seed; the result does not depend on
    ``processes``)."""
    settings, selection = parameters['exploration'], parameters['selection']
    rng = np.random.default_rng(settings['seed'])
    starts = build_atoms(load_arrays(parameters['structures']))
    groups = trajectory_groups(settings, len(starts))
    trajectories: list[dict] = []
    candidates: list = []
    refused: list = []
    workers = min(processes, len(groups))
    if workers > 1:
        import multiprocessing

        _WORKER.update(parameters=parameters, starts=starts)
        tasks = [(number, start_index, temperature) for number, (start_index, temperature) in enumerate(groups)]
        with multiprocessing.get_context('fork').Pool(workers, _start_worker) as pool:
            results = pool.map(_run_group_in_worker, tasks, chunksize=1)
        samples = []
        for records, found, rejected, items, seen in results:
            offset = len(trajectories)
            trajectories.extend(records)
            candidates.extend(
                (frame, offset + index, step, gamma, temperature) for frame, index, step, gamma, temperature in found
            )
            refused.extend({**entry, 'trajectory': offset + entry['trajectory']} for entry in rejected)
            samples.append(([(offset + index, *rest) for index, *rest in items], seen))
        chosen = merge_calibration(samples, selection.get('calibration_samples', 0), rng)
    else:
        calibration = Reservoir(selection.get('calibration_samples', 0), rng)
        for start_index, temperature in groups:
            records, found, rejected = run_group(
                starts, start_index, temperature, parameters, calculator, rng, calibration, len(trajectories)
            )
            trajectories.extend(records)
            candidates.extend(found)
            refused.extend(rejected)
        chosen = calibration.items
    below = [
        (frame, trajectory, step, gamma, trajectories[trajectory]['temperature_K'])
        for trajectory, frame, step, gamma in sorted(chosen, key=lambda item: (item[0], item[2]))
    ]
    return trajectories, candidates, below, refused


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write('usage: explore.py parameters.json\n')
        return 2
    from pyace import PyACECalculator

    started = time.time()
    with open(argv[0]) as handle:
        parameters = json.load(handle)
    selection = parameters['selection']
    processes = max(1, int(parameters.get('processes', 1)))
    calculator = PyACECalculator(parameters['potential'])
    calculator.set_active_set(parameters['active_set'])
    trajectories, candidates, below, refused = explore(parameters, calculator, processes)
    pool = selection_pool(candidates, selection)
    indices = select(
        pool,
        parameters['potential'],
        parameters['active_set'],
        selection,
        parameters['exploration']['seed'],
        [record['start'] for record in trajectories],
    )
    write_selected(SELECTED, pool, indices)
    write_selected(CALIBRATION, below, list(range(len(below))))
    explored = sum(len(record['gamma']) for record in trajectories)
    above = sum(int(np.sum(np.asarray(record['gamma']) >= selection['gamma_lo'])) for record in trajectories)
    grades = [record['max_gamma'] for record in trajectories if record['max_gamma'] is not None]
    summary = {
        'trajectories': len(trajectories),
        'explored_steps': explored,
        'steps_above_gamma_lo': above,
        'fraction_above_gamma_lo': above / explored if explored else 0.0,
        'max_gamma': max(grades, default=None),
        'stopped_at_gamma_hi': sum(record['stopped_by'] in ('gamma_hi', 'gamma_not_finite') for record in trajectories),
        'candidates': len(candidates),
        'refused_candidates': len(refused),
        'refused': refused[:100],
        'selected': len(indices),
        'calibration': len(below),
        'wall_time': time.time() - started,
        'processes': min(processes, sum(record['restart'] == 0 for record in trajectories)),  # one per group
        'per_trajectory': trajectories,
    }
    with open(SUMMARY, 'w') as handle:
        json.dump(summary, handle, allow_nan=False)
    sys.stdout.write(
        f'explored {explored} steps in {len(trajectories)} trajectories; {above} above gamma_lo; '
        f'{len(candidates)} candidates ({len(refused)} refused); selected {len(indices)}; '
        f'{len(below)} calibration frames below gamma_lo\n'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
