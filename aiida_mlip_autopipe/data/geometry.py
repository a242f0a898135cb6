"""Geometry checks of labelled structures: what pacemaker fails on after start-up is refused when data comes in.

* two atoms closer than :data:`MIN_INTERATOMIC_DISTANCE` (e.g. duplicated atoms at distance 0 make pacemaker's
  loss NaN at iteration 0, naming no structure);
* mixed periodicity (``pbc`` not all equal): pacemaker treats a structure as periodic or not, never partly;
* periodicity with a zero-volume cell.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ('MIN_INTERATOMIC_DISTANCE', 'closest_pair', 'geometry_problem')

#: Atoms closer than this (Å) are refused: no physical structure has them, and pacemaker's fit breaks on them.
MIN_INTERATOMIC_DISTANCE = 0.3
#: Above this many atoms the pair search uses ASE's neighbour list instead of all pairs.
_DENSE_LIMIT = 300


def closest_pair(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float) -> tuple[float, int, int]:
    """Return ``(distance, i, j)`` of the closest pair of atoms (periodic images included) if it is below
    ``cutoff``, else ``(inf, -1, -1)``. An atom closer than ``cutoff`` to its own image gives ``i == j``."""
    count = len(positions)
    periodic = np.asarray(pbc, dtype=bool)
    if count > _DENSE_LIMIT:
        from ase import Atoms
        from ase.neighborlist import neighbor_list

        first, second, distance = neighbor_list('ijd', Atoms(positions=positions, cell=cell, pbc=periodic), cutoff)
        if not len(distance):
            return float('inf'), -1, -1
        index = int(np.argmin(distance))
        return float(distance[index]), int(first[index]), int(second[index])
    difference = positions[None, :, :] - positions[:, None, :]
    shifts = [np.zeros(3)]
    if periodic.any():
        inverse = np.linalg.inv(cell)
        fractional = difference @ inverse
        fractional -= np.round(fractional) * periodic
        difference = fractional @ cell
        ranges = [(-1, 0, 1) if flag else (0,) for flag in periodic]
        shifts = [np.asarray(shift, dtype=float) @ cell for shift in itertools.product(*ranges)]
    best = (float('inf'), -1, -1)
    for shift in shifts:
        distances = np.linalg.norm(difference + shift, axis=-1)
        if not np.any(shift):
            np.fill_diagonal(distances, np.inf)
        pair = np.unravel_index(np.argmin(distances), distances.shape)
        if distances[pair] < best[0]:
            best = (float(distances[pair]), int(pair[0]), int(pair[1]))
    return best if best[0] < cutoff else (float('inf'), -1, -1)


def geometry_problem(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, min_distance: float = MIN_INTERATOMIC_DISTANCE
) -> str | None:
    """Return why pacemaker cannot use this structure (mixed periodicity, zero cell, atoms too close), or ``None``."""
    periodic = np.asarray(pbc, dtype=bool).reshape(3)
    if periodic.any() and not periodic.all():
        return f'mixed periodicity pbc={periodic.tolist()}: pacemaker needs all three directions periodic or none'
    if periodic.all() and abs(np.linalg.det(cell)) < 1e-6:
        return 'it is periodic but its cell has zero volume'
    if min_distance > 0 and (len(positions) > 1 or periodic.any()):
        distance, first, second = closest_pair(positions, cell, periodic, min_distance)
        if first >= 0:
            if first == second:
                return f'atom {first} is {distance:.3g} Å from its own periodic image (min {min_distance} Å)'
            return f'atoms {first} and {second} are {distance:.3g} Å apart (closer than {min_distance} Å)'
    return None
