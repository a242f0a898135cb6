"""What the loop checks on its labels: physical bounds from the first fit's data (guards against configurations of
a potential's own faulty MD) and the calibration of the extrapolation grade (the current potential's error on the
new labels against their gamma, the miss rate below gamma_lo, thresholds suggested by the data)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aiida_mlip_autopipe.jobscripts import pacemaker_io

__all__ = ('DataBounds', 'LabelError', 'data_bounds', 'label_errors', 'miss_rate', 'suggested_thresholds')

#: the miss rate the suggested gamma_lo keeps below
TARGET_MISS_RATE = 0.05


def pair_key(a: int, b: int) -> str:
    """The key of an element pair (atomic numbers, smaller first), as ``explore.py`` reads it."""
    return f'{min(a, b)}-{max(a, b)}'


def shortest_distances(numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> dict:
    """The shortest distance per element pair in one structure (minimum image)."""
    from ase.geometry import get_distances

    if len(numbers) < 2:
        return {}
    _, distances = get_distances(positions, cell=cell, pbc=pbc)
    upper = np.triu_indices(len(numbers), k=1)
    result: dict[str, float] = {}
    for i, j, distance in zip(*upper, distances[upper], strict=True):
        key = pair_key(int(numbers[i]), int(numbers[j]))
        result[key] = min(result.get(key, np.inf), float(distance))
    return result


@dataclass
class DataBounds:
    """The physical range of the first fit's data that the loop's labels are held to."""

    min_distances: dict
    """Shortest distance (Å) per element pair (``'29-29'``), ``'*'``: the shortest of any pair."""
    max_energy_per_atom: float
    """The highest energy per atom (eV)."""
    max_force: float
    """The largest force component (eV/Å)."""

    def as_dict(self) -> dict:
        return {
            'min_distances': self.min_distances,
            'max_energy_per_atom': self.max_energy_per_atom,
            'max_force': self.max_force,
        }


def data_bounds(arrays: dict) -> DataBounds:
    """The bounds of a ``TrainingSetData``'s arrays (``get_arrays()``)."""
    natoms = arrays['natoms']
    bounds = pacemaker_io.offsets(natoms)
    distances: dict[str, float] = {}
    for index in range(len(natoms)):
        part = slice(bounds[index], bounds[index + 1])
        found = shortest_distances(
            arrays['numbers'][part], arrays['positions'][part], arrays['cells'][index], arrays['pbc'][index]
        )
        for key, value in found.items():
            distances[key] = min(distances.get(key, np.inf), value)
    if distances:
        distances['*'] = min(distances.values())
    forces = arrays.get('forces')
    return DataBounds(
        min_distances={key: round(value, 6) for key, value in distances.items()},
        max_energy_per_atom=float(np.max(arrays['energy'] / natoms)),
        max_force=float(np.max(np.abs(forces))) if forces is not None and len(forces) else 0.0,
    )


@dataclass
class LabelError:
    """One labelled structure: the current potential against its label, its grade, and whether it is kept."""

    gamma: float
    force_rmse: float | None
    """eV/Å, per component."""
    energy_error: float | None
    """meV/atom (potential minus label)."""
    below_gamma_lo: bool
    refused: str | None = None
    """Why the label is not trained on (a physical bound), else None."""

    def as_dict(self) -> dict:
        return {
            'gamma': round(self.gamma, 6),
            'force_rmse': None if self.force_rmse is None else round(self.force_rmse, 6),
            'energy_error': None if self.energy_error is None else round(self.energy_error, 6),
            'below_gamma_lo': self.below_gamma_lo,
            'refused': self.refused,
        }


def label_errors(
    arrays: dict,
    origins: list[dict],
    reference: dict[str, float],
    bounds: DataBounds | None,
    max_energy_above_data: float | None,
    max_force_ratio: float | None,
    gamma_lo: float,
) -> list[LabelError]:
    """For each labelled structure (``arrays`` of the collected labels, ``origins``: the ``exploration`` attribute
    of the structure each was labelled from, with the potential's predicted energy and forces): its error and
    whether a physical bound refuses it. ``reference``: per-element energies the potential's energy is shifted by."""
    from ase.data import chemical_symbols

    bounds_at = pacemaker_io.offsets(arrays['natoms'])
    errors = []
    for index, origin in enumerate(origins):
        part = slice(bounds_at[index], bounds_at[index + 1])
        numbers = arrays['numbers'][part]
        count = len(numbers)
        energy = float(arrays['energy'][index])
        forces = arrays['forces'][part] if 'forces' in arrays else None
        force_rmse = energy_error = None
        if origin.get('predicted_forces') is not None and forces is not None:
            force_rmse = float(np.sqrt(np.mean(np.square(np.asarray(origin['predicted_forces']) - forces))))
        if origin.get('predicted_energy') is not None:
            shift = sum(reference.get(chemical_symbols[number], 0.0) for number in numbers)
            energy_error = 1000 * (origin['predicted_energy'] + shift - energy) / count
        refused = None
        if bounds is not None and max_energy_above_data is not None:
            limit = bounds.max_energy_per_atom + max_energy_above_data
            if energy / count > limit:
                refused = f'energy {energy / count:.3f} eV/atom above the bound {limit:.3f}'
        if refused is None and bounds is not None and max_force_ratio is not None and forces is not None:
            limit = max_force_ratio * bounds.max_force
            if limit > 0 and np.max(np.abs(forces)) > limit:
                refused = f'force {np.max(np.abs(forces)):.2f} eV/Å above the bound {limit:.2f}'
        errors.append(LabelError(float(origin['gamma']), force_rmse, energy_error, origin['gamma'] < gamma_lo, refused))
    return errors


def miss_rate(errors: list[LabelError], threshold: float) -> float | None:
    """The fraction of the labelled frames below gamma_lo whose force RMSE exceeds ``threshold`` (None: none)."""
    below = [error for error in errors if error.below_gamma_lo and error.force_rmse is not None]
    if not below:
        return None
    return sum(error.force_rmse is not None and error.force_rmse > threshold for error in below) / len(below)


def suggested_thresholds(errors: list[LabelError], threshold: float) -> dict:
    """Thresholds the labelled frames support: ``gamma_lo``, the highest grade below which at most 5 % of the frames
    have a force RMSE above ``threshold`` (the highest grade seen if none does; None: no frames); ``gamma_hi``, the
    lowest grade of a label refused by a physical bound (None: none refused)."""
    known = sorted((error.gamma, error.force_rmse > threshold) for error in errors if error.force_rmse is not None)
    misses = np.cumsum([miss for _, miss in known])
    passing = [count for count in range(1, len(known) + 1) if misses[count - 1] / count <= TARGET_MISS_RATE]
    gamma_lo = None
    if known:  # below the grade of the first frame after the longest passing prefix (or the highest seen)
        gamma_lo = known[min(max(passing), len(known) - 1)][0] if passing else known[0][0]
    refused = [error.gamma for error in errors if error.refused]
    return {'gamma_lo': gamma_lo, 'gamma_hi': min(refused) if refused else None}


def calibration_figure(rows: list[dict], gamma_lo: float, threshold: float):
    """The current potential's force RMSE on every label against its gamma, per iteration (log-log), with gamma_lo
    and the miss threshold; refused labels as crosses."""
    from aiida_mlip_autopipe.potentials.plots import _figure

    figure = _figure(6.5, 4.2)
    axis = figure.subplots()
    for row in rows:
        points = [entry for entry in row.get('error_vs_gamma') or [] if entry.get('force_rmse') is not None]
        if not points:
            continue
        kept = [entry for entry in points if not entry.get('refused')]
        refused = [entry for entry in points if entry.get('refused')]
        line = axis.scatter(
            [e['gamma'] for e in kept], [e['force_rmse'] for e in kept], s=18, label=f'iteration {row["iteration"]}'
        )
        if refused:
            axis.scatter(
                [e['gamma'] for e in refused],
                [e['force_rmse'] for e in refused],
                marker='x',
                color=line.get_facecolor(),
            )
    axis.axvline(gamma_lo, color='gray', linestyle='--', linewidth=1, label='gamma_lo')
    axis.axhline(threshold, color='tab:red', linestyle=':', linewidth=1, label='miss threshold')
    axis.set_xscale('log')
    axis.set_yscale('log')
    axis.set_xlabel('Extrapolation grade gamma (max over atoms)')
    axis.set_ylabel('Force RMSE of the current potential (eV/Å)')
    axis.legend(fontsize='small')
    axis.set_title('Calibration of gamma: error on the new labels')
    return figure
