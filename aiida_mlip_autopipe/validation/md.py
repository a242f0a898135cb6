"""MD stability: NVT Langevin at each temperature (ASE), tracking the smallest interatomic distance ("no lost
atoms": never below ``min_distance``), the drift of the total energy and, with an active set on the calculator, the
largest extrapolation grade (``calc.results['gamma']``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms, units

__all__ = ('UNITS', 'compute', 'smallest_distance')

UNITS = {'lost_atoms': 'runs', 'min_distance': 'Å', 'energy_drift': 'meV/atom/ps', 'max_gamma': ''}


def smallest_distance(atoms: Atoms) -> float:
    """The smallest interatomic distance (Å), periodic images included."""
    from ase.neighborlist import neighbor_list

    distances = neighbor_list('d', atoms, 4.0)
    if len(distances):
        return float(distances.min())
    return float(np.min(atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)])) if len(atoms) > 1 else 0.0


def compute(
    atoms: Atoms,
    calc,
    temperatures: Sequence[float] = (300.0,),
    steps: int = 200,
    timestep_fs: float = 2.0,
    friction: float = 0.01,
    supercell: Sequence[int] = (2, 2, 2),
    min_distance: float | None = None,
    interval: int = 5,
    seed: int = 42,
) -> tuple[dict, dict]:
    """Run ``steps`` of Langevin MD per temperature from ``atoms`` repeated ``supercell``.

    ``min_distance`` defaults to half the starting smallest distance. ``lost_atoms`` counts the runs in which two
    atoms came closer than it (or the calculator failed); ``energy_drift`` is the largest slope of the total energy
    per atom (meV/atom/ps, linear fit over the second half of a run: under a thermostat, a heating or cooling trend).
    """
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    start = atoms.repeat(tuple(supercell))
    limit = float(min_distance) if min_distance is not None else 0.5 * smallest_distance(start)
    lost, smallest, drifts, gammas = 0, np.inf, [], []
    arrays = {}
    for number, temperature in enumerate(temperatures):
        system = start.copy()
        system.calc = calc
        rng = np.random.default_rng(seed + number)
        MaxwellBoltzmannDistribution(system, temperature_K=temperature, rng=rng)
        dynamics = Langevin(
            system,
            timestep_fs * units.fs,
            temperature_K=temperature,
            friction=friction,
            fixcm=False,
            rng=rng,
            logfile=None,
        )
        rows: list[tuple[float, ...]] = []
        failed = False

        def record(system=system, trace=rows, dynamics=dynamics):
            gamma = calc.results.get('gamma') if hasattr(calc, 'results') else None
            trace.append(
                (
                    dynamics.get_time() / (1000 * units.fs),
                    system.get_temperature(),
                    system.get_potential_energy() / len(system),
                    system.get_total_energy() / len(system),
                    smallest_distance(system),
                    float(np.max(gamma)) if gamma is not None else np.nan,
                )
            )

        dynamics.attach(record, interval=interval)
        try:
            dynamics.run(steps)
        except Exception:  # a potential far outside its data may fail (NaN, atoms on top of each other)
            failed = True
        trace = np.asarray(rows, dtype=float).reshape(-1, 6)
        run_smallest = float(np.nanmin(trace[:, 4])) if len(trace) else 0.0
        smallest = min(smallest, run_smallest)
        lost += int(failed or run_smallest < limit)
        half = trace[len(trace) // 2 :]
        if len(half) > 1:
            drifts.append(abs(np.polyfit(half[:, 0], half[:, 3], 1)[0]) * 1000.0)
        if len(trace) and np.isfinite(trace[:, 5]).any():
            gammas.append(float(np.nanmax(trace[:, 5])))
        arrays[f'md_{number}'] = trace
    results = {
        'lost_atoms': lost,
        'min_distance': float(smallest),
        'min_distance_limit': limit,
        'energy_drift': float(max(drifts)) if drifts else float('nan'),
        'temperatures': [float(value) for value in temperatures],
    }
    if gammas:
        results['max_gamma'] = max(gammas)
    return results, arrays
