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


def dynamics(atoms, settings: dict, temperature: float, rng):
    """The ASE integrator of the ensemble: Langevin (``nvt``) or velocity Verlet (``nve``)."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.verlet import VelocityVerlet

    try:  # ASE >= 3.29
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta  # noqa: N813
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    timestep = settings['timestep_fs'] * units.fs
    if settings['ensemble'] == 'nve':
        return VelocityVerlet(atoms, timestep)
    friction = settings['friction_per_fs'] / units.fs
    return Langevin(atoms, timestep, temperature_K=temperature, friction=friction, fixcm=False, rng=rng)


def run_trajectory(atoms, calculator, temperature: float, settings: dict, selection: dict, rng) -> tuple[dict, list]:
    """Run one MD trajectory; return its record and the candidate frames (``gamma_lo <= gamma < gamma_hi``)."""
    gamma_lo, gamma_hi = selection['gamma_lo'], selection['gamma_hi']
    atoms.calc = calculator
    integrator = dynamics(atoms, settings, temperature, rng)
    gammas, candidates, stop = [], [], 'steps'
    for step in range(settings['steps'] + 1):
        if step:
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
        if gamma >= gamma_hi:
            gammas.append(gamma)
            stop = 'gamma_hi'
            break
        gammas.append(gamma)
        if gamma >= gamma_lo and step % settings['sample_interval'] == 0:
            frame = atoms.copy()
            frame.calc = None
            frame.arrays['gamma'] = np.array(calculator.results['gamma'], dtype=float)  # per atom
            candidates.append((frame, step, gamma))
    record = {
        'temperature_K': temperature,
        'steps': max(len(gammas) - 1, 0),
        'stopped_by': stop,
        'max_gamma': max(gammas) if gammas else None,
        'gamma': gammas,
    }
    return record, candidates


def select(candidates: list, potential: str, active_set: str, selection: dict) -> list[int]:
    """The candidates to label: D-optimal (``pace_select``'s MaxVol against the active set) or the top gammas."""
    limit = selection['max_per_iteration']
    if not candidates or limit == 0:
        return []
    if selection['method'] == 'max_gamma':
        order = np.argsort([-gamma for _, _, _, gamma, _ in candidates], kind='stable')
        return [int(index) for index in order[:limit]]
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
        max_structures=limit,
    )
    return [int(index) for index in chosen['candidate']]


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
    }
    np.savez(path, **arrays)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write('usage: explore.py parameters.json\n')
        return 2
    from pyace import PyACECalculator

    started = time.time()
    with open(argv[0]) as handle:
        parameters = json.load(handle)
    settings, selection = parameters['exploration'], parameters['selection']
    rng = np.random.default_rng(settings['seed'])
    calculator = PyACECalculator(parameters['potential'])
    calculator.set_active_set(parameters['active_set'])
    starts = build_atoms(load_arrays(parameters['structures']))
    trajectories, candidates = [], []
    for start_index, start in enumerate(starts):
        for temperature in settings['temperatures_K']:
            for _ in range(settings['repeats']):
                atoms = deformed(start, settings['strain'], settings['rattle'], rng)
                record, found = run_trajectory(atoms, calculator, temperature, settings, selection, rng)
                record['start'] = start_index
                index = len(trajectories)
                trajectories.append(record)
                candidates += [(frame, index, step, gamma, temperature) for frame, step, gamma in found]
    indices = select(candidates, parameters['potential'], parameters['active_set'], selection)
    write_selected(SELECTED, candidates, indices)
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
        'selected': len(indices),
        'wall_time': time.time() - started,
        'per_trajectory': trajectories,
    }
    with open(SUMMARY, 'w') as handle:
        json.dump(summary, handle, allow_nan=False)
    sys.stdout.write(
        f'explored {explored} steps in {len(trajectories)} trajectories; {above} above gamma_lo; '
        f'{len(candidates)} candidates; selected {len(indices)}\n'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
