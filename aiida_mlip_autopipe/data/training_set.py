"""``TrainingSetData``: many labelled structures (ragged) in one node, with queryable summary attributes."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from aiida.orm import Data

from aiida_mlip_autopipe.data.geometry import MIN_INTERATOMIC_DISTANCE, geometry_problem
from aiida_mlip_autopipe.jobscripts import pacemaker_io

__all__ = ('TrainingSetBuilder', 'TrainingSetData', 'TrainingSetError')

PER_STRUCTURE = ('natoms', 'cells', 'pbc', 'energy', 'has_forces', 'stress', 'has_stress', 'source')
REQUIRED = ('numbers', 'positions', 'forces', 'natoms', 'cells', 'pbc', 'energy', 'has_forces')


class TrainingSetError(ValueError):
    """The labelled structures are invalid (NaN/inf labels, wrong shapes, missing energies...)."""


def _voigt(stress: Any) -> np.ndarray:
    stress = np.asarray(stress, dtype=float)
    if stress.shape == (3, 3):
        return stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    if stress.shape != (6,):
        raise TrainingSetError(f'stress must have shape (6,) or (3, 3), got {stress.shape}')
    return stress


def _number(value: Any) -> tuple[float, str | None]:
    """``value`` as a float, or why it is not a number: a boolean (``True`` is not 1 eV), a string, an array."""
    if isinstance(value, bool | np.bool_):
        return 0.0, f'{value!r} is a boolean, not a number'
    if isinstance(value, str | bytes):
        return 0.0, f'{value!r} is not a number'
    try:
        return float(value), None
    except (TypeError, ValueError):
        return 0.0, f'{value!r} is not a number'


def _calculator_label(atoms, name: str):
    calc = atoms.calc
    if calc is None:
        return None
    from ase.calculators.calculator import PropertyNotImplementedError

    try:
        return calc.get_property(name, atoms)
    except (PropertyNotImplementedError, KeyError, NotImplementedError):
        return None


def labels_of(atoms) -> tuple[float | None, np.ndarray | None, np.ndarray | None]:
    """Return ``(energy, forces, stress)`` of ``atoms``: its calculator first, then ``info`` / ``arrays``."""
    energy = _calculator_label(atoms, 'energy')
    if energy is None:
        energy = atoms.info.get('energy')
    forces = _calculator_label(atoms, 'forces')
    if forces is None:
        forces = atoms.arrays.get('forces')
    stress = _calculator_label(atoms, 'stress')
    if stress is None:
        stress = atoms.info.get('stress')
    return energy, forces, stress


class TrainingSetBuilder:
    """Accumulate labelled structures into the flattened arrays of the stable format.

    :meth:`add` checks one structure and returns ``None`` when it was added, or the reason it was not (no
    atoms, no energy, NaN/inf values, badly shaped forces or stress, a geometry pacemaker cannot fit: atoms closer
    than ``min_distance`` Å, mixed periodicity, a zero cell with periodicity), so that callers refuse or skip.
    """

    def __init__(self, min_distance: float = MIN_INTERATOMIC_DISTANCE):
        self.min_distance = min_distance
        self._numbers: list[np.ndarray] = []
        self._positions: list[np.ndarray] = []
        self._forces: list[np.ndarray] = []
        self._natoms: list[int] = []
        self._cells: list[np.ndarray] = []
        self._pbc: list[np.ndarray] = []
        self._energy: list[float] = []
        self._has_forces: list[bool] = []
        self._stress: list[np.ndarray] = []
        self._has_stress: list[bool] = []
        self._source: list[str] = []

    def __len__(self) -> int:
        return len(self._natoms)

    def add(self, numbers, positions, cell, pbc, energy, forces=None, stress=None, source: str = '') -> str | None:
        """Add one structure; return why it was refused, or ``None``."""
        count = len(numbers)
        if count == 0:
            return 'it has no atoms'
        if energy is None:
            return 'it has no energy label'
        energy, problem = _number(energy)
        if problem:
            return f'its energy {problem}'
        try:
            positions = np.asarray(positions, dtype=float)
            cell = np.asarray(cell, dtype=float)
        except (TypeError, ValueError):
            return 'its positions or cell are not numbers'
        if not np.isfinite(energy):
            return f'its energy is {energy}'
        if positions.shape != (count, 3) or not np.all(np.isfinite(positions)):
            return 'its positions are not finite numbers of shape (natoms, 3)'
        if cell.shape != (3, 3) or not np.all(np.isfinite(cell)):
            return 'its cell is not a finite 3x3 matrix'
        pbc = np.asarray(pbc, dtype=bool).reshape(3) if np.ndim(pbc) else np.full(3, bool(pbc))
        problem = geometry_problem(positions, cell, pbc, self.min_distance)
        if problem:
            return problem
        if forces is not None:
            try:
                forces = np.asarray(forces, dtype=float)
            except (TypeError, ValueError):
                return 'its forces are not numbers'
            if forces.shape != (count, 3):
                return f'forces have shape {forces.shape}, expected ({count}, 3)'
            if not np.all(np.isfinite(forces)):
                return 'its forces contain NaN or infinity'
        if stress is not None:
            try:
                stress = _voigt(stress)
            except TrainingSetError as exception:
                return str(exception)
            except (TypeError, ValueError):
                return 'its stress is not numbers'
            if not np.all(np.isfinite(stress)):
                return 'its stress contains NaN or infinity'
        self._numbers.append(np.asarray(numbers, dtype=np.int32))
        self._positions.append(positions)
        self._natoms.append(count)
        self._cells.append(cell)
        self._pbc.append(pbc)
        self._energy.append(energy)
        self._has_forces.append(forces is not None)
        self._forces.append(forces if forces is not None else np.zeros((count, 3)))
        self._has_stress.append(stress is not None)
        self._stress.append(stress if stress is not None else np.zeros(6))
        self._source.append(str(source))
        return None

    def arrays(self) -> dict[str, np.ndarray]:
        """Return the flattened arrays (``stress``/``has_stress`` only if some structure has stress)."""
        empty = not self._natoms
        arrays = {
            'numbers': np.zeros(0, dtype=np.int32) if empty else np.concatenate(self._numbers),
            'positions': np.zeros((0, 3)) if empty else np.concatenate(self._positions),
            'forces': np.zeros((0, 3)) if empty else np.concatenate(self._forces),
            'natoms': np.asarray(self._natoms, dtype=np.int64),
            'cells': np.asarray(self._cells, dtype=float).reshape(-1, 3, 3),
            'pbc': np.asarray(self._pbc, dtype=bool).reshape(-1, 3),
            'energy': np.asarray(self._energy, dtype=float),
            'has_forces': np.asarray(self._has_forces, dtype=bool),
            'source': np.asarray(self._source, dtype=str),
        }
        if any(self._has_stress):
            arrays['stress'] = np.asarray(self._stress, dtype=float)
            arrays['has_stress'] = np.asarray(self._has_stress, dtype=bool)
        return arrays


class TrainingSetData(Data):
    """Labelled structures (positions, cell, pbc, energy, forces, optional stress) stored as one ``.npz``.

    Compositions and atom counts may differ between structures. The bulk lives in the node's repository in
    :mod:`aiida_mlip_autopipe.jobscripts.pacemaker_io`'s stable format; the summary lives in attributes so that
    it can be queried: ``num_structures``, ``num_atoms``, ``elements``, ``has_forces``, ``has_stress``,
    ``energy_per_atom_min``/``_max`` (eV/atom), ``content_hash``. Each structure keeps a ``source`` string that
    says where it came from (e.g. an ASE database row or a DFT calculation's UUID).
    """

    FILENAME = 'structures.npz'

    def __init__(self, arrays: dict[str, np.ndarray] | None = None, **kwargs):
        super().__init__(**kwargs)
        if arrays is not None:
            self._set_arrays(arrays)

    # -- construction -------------------------------------------------------------------------------------

    @classmethod
    def from_atoms(
        cls,
        structures: Iterable,
        sources: Sequence[str] | None = None,
        min_distance: float = MIN_INTERATOMIC_DISTANCE,
    ) -> TrainingSetData:
        """Build from ``ase.Atoms`` labelled by their calculator (or ``info['energy']`` / ``arrays['forces']``).

        A structure without forces is kept with ``has_forces`` false for it; NaN/inf labels, wrongly shaped
        forces, missing energies, empty structures and geometries pacemaker cannot fit (atoms closer than
        ``min_distance`` Å, mixed periodicity, a periodic zero cell) are refused with the structure's index.
        """
        structures = list(structures)
        if sources is not None and len(sources) != len(structures):
            raise TrainingSetError(f'{len(sources)} sources given for {len(structures)} structures')
        builder = TrainingSetBuilder(min_distance)
        for index, atoms in enumerate(structures):
            energy, forces, stress = labels_of(atoms)
            problem = builder.add(
                atoms.numbers,
                atoms.positions,
                atoms.cell[:],
                atoms.pbc,
                energy,
                forces,
                stress,
                source=sources[index] if sources is not None else '',
            )
            if problem:
                raise TrainingSetError(f'structure {index} ({atoms.get_chemical_formula()}): {problem}')
        return cls(arrays=builder.arrays())

    @classmethod
    def from_arrays(cls, min_distance: float = MIN_INTERATOMIC_DISTANCE, **arrays: np.ndarray) -> TrainingSetData:
        """Build from the flattened arrays of the stable format (see :mod:`~.jobscripts.pacemaker_io`), with the
        geometry checks of :meth:`from_atoms`."""
        checked = cls._check_arrays(arrays)  # shapes and values first, then the geometry, then the node
        bounds = pacemaker_io.offsets(checked['natoms'])
        for index in range(len(checked['natoms'])):
            positions = checked['positions'][bounds[index] : bounds[index + 1]]
            problem = geometry_problem(positions, checked['cells'][index], checked['pbc'][index], min_distance)
            if problem:
                raise TrainingSetError(f'structure {index}: {problem}')
        return cls(arrays=checked)

    @classmethod
    def concatenate(cls, training_sets: Sequence[TrainingSetData]) -> TrainingSetData:
        """Return a new (unstored) set holding all structures of ``training_sets`` in order."""
        parts = [ts.get_arrays() for ts in training_sets]
        if not parts:
            raise TrainingSetError('nothing to concatenate')
        with_stress = any('stress' in part for part in parts)
        merged = {}
        for key in (*REQUIRED, 'source'):
            merged[key] = np.concatenate([part[key] for part in parts])
        if with_stress:
            merged['stress'] = np.concatenate(
                [part.get('stress', np.zeros((len(part['natoms']), 6))) for part in parts]
            )
            merged['has_stress'] = np.concatenate(
                [part.get('has_stress', np.zeros(len(part['natoms']), dtype=bool)) for part in parts]
            )
        return cls(arrays=merged)

    def select(self, indices: Sequence[int] | np.ndarray) -> TrainingSetData:
        """Return a new (unstored) set with the structures at ``indices``, in that order."""
        arrays = self.get_arrays()
        indices = np.asarray(indices, dtype=np.int64)
        bounds = pacemaker_io.offsets(arrays['natoms'])
        atom_index = (
            np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in indices]) if len(indices) else np.zeros(0, int)
        )
        selected = {}
        for key, value in arrays.items():
            if key in pacemaker_io.PER_ATOM:
                selected[key] = value[atom_index]
            else:
                selected[key] = value[indices]
        return type(self)(arrays=selected)

    def structure_keys(self) -> list[bytes]:
        """One digest per structure over what makes it that labelled structure: atomic numbers, positions, cell,
        periodicity, energy, forces (when it has them) and stress (when it has it); not its ``source``. Two
        structures with equal keys are the same training example (``-0.0`` and ``0.0`` count as equal)."""
        arrays = self.get_arrays()
        bounds = pacemaker_io.offsets(arrays['natoms'])
        with_stress = 'has_stress' in arrays
        keys = []
        for index in range(len(arrays['natoms'])):
            atoms = slice(bounds[index], bounds[index + 1])
            digest = hashlib.sha256()
            has_forces = bool(arrays['has_forces'][index])
            has_stress = with_stress and bool(arrays['has_stress'][index])
            parts = [
                arrays['numbers'][atoms].astype('<i4'),
                arrays['positions'][atoms],
                arrays['cells'][index],
                arrays['pbc'][index].astype(np.uint8),
                np.asarray([arrays['energy'][index], has_forces, has_stress], dtype=float),
            ]
            if has_forces:
                parts.append(arrays['forces'][atoms])
            if has_stress:
                parts.append(arrays['stress'][index])
            for part in parts:
                normal = np.ascontiguousarray(part + 0 if part.dtype.kind == 'f' else part)  # -0.0 -> 0.0
                digest.update(f'{normal.dtype.str}{normal.shape}'.encode())
                digest.update(normal.tobytes())
            keys.append(digest.digest())
        return keys

    # -- validation and storage ---------------------------------------------------------------------------

    @staticmethod
    def _check_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [key for key in REQUIRED if key not in arrays]
        if missing:
            raise TrainingSetError(f'missing arrays: {", ".join(missing)}')
        arrays = dict(arrays)
        arrays.setdefault('source', np.full(len(arrays['natoms']), '', dtype=str))
        unknown = set(arrays) - set(REQUIRED) - set(PER_STRUCTURE)
        if unknown:
            raise TrainingSetError(f'unknown arrays: {", ".join(sorted(unknown))}')
        arrays['numbers'] = np.asarray(arrays['numbers'], dtype=np.int32)
        arrays['natoms'] = np.asarray(arrays['natoms'], dtype=np.int64)
        arrays['source'] = np.asarray(arrays['source'], dtype=str)
        for key in ('positions', 'forces', 'cells', 'energy') + (('stress',) if 'stress' in arrays else ()):
            arrays[key] = np.asarray(arrays[key], dtype=float)
        for key in ('pbc', 'has_forces') + (('has_stress',) if 'has_stress' in arrays else ()):
            arrays[key] = np.asarray(arrays[key], dtype=bool)
        count, total = len(arrays['natoms']), int(arrays['natoms'].sum())
        expected = {
            'numbers': (total,),
            'positions': (total, 3),
            'forces': (total, 3),
            'cells': (count, 3, 3),
            'pbc': (count, 3),
            'energy': (count,),
            'has_forces': (count,),
            'source': (count,),
            'stress': (count, 6),
            'has_stress': (count,),
        }
        for key, shape in expected.items():
            if key in arrays and arrays[key].shape != shape:
                raise TrainingSetError(f'array {key!r} has shape {arrays[key].shape}, expected {shape}')
        if ('stress' in arrays) != ('has_stress' in arrays):
            raise TrainingSetError('stress and has_stress must be given together')
        empty = np.flatnonzero(arrays['natoms'] <= 0)
        if len(empty):
            raise TrainingSetError(f'structure(s) {empty[:10].tolist()} have no atoms')
        if np.any((arrays['numbers'] < 1) | (arrays['numbers'] > 118)):
            raise TrainingSetError('atomic numbers must lie between 1 and 118')
        bounds = pacemaker_io.offsets(arrays['natoms'])
        for key in ('energy', 'cells', 'positions', 'forces', 'stress'):
            if key not in arrays:
                continue
            bad = ~np.isfinite(arrays[key])
            if bad.size == 0:
                continue
            if bad.ndim > 1:
                bad = bad.reshape(len(bad), -1).any(axis=1)
            if bad.any():
                rows = np.flatnonzero(bad)
                if key in pacemaker_io.PER_ATOM:
                    rows = np.unique(np.searchsorted(bounds, rows, side='right') - 1)
                raise TrainingSetError(f'{key} of structure(s) {rows[:10].tolist()} contain NaN or infinity')
        return arrays

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        arrays = self._check_arrays(arrays)
        buffer = io.BytesIO()
        named: dict[str, Any] = arrays  # numpy's stubs let ``**`` of arrays reach ``allow_pickle: bool``
        np.savez(buffer, **named)
        self.base.repository.put_object_from_bytes(buffer.getvalue(), self.FILENAME)
        self._arrays_cache = arrays
        natoms = arrays['natoms']
        energy_per_atom = arrays['energy'] / natoms if len(natoms) else np.zeros(0)
        attributes = {
            'format': pacemaker_io.FORMAT,
            'num_structures': len(natoms),
            'num_atoms': int(natoms.sum()),
            'elements': sorted({_symbol(z) for z in np.unique(arrays['numbers'])}),
            'has_forces': bool(arrays['has_forces'].all()) if len(natoms) else False,
            'num_structures_without_forces': int((~arrays['has_forces']).sum()),
            'has_stress': bool(arrays['has_stress'].all()) if 'has_stress' in arrays and len(natoms) else False,
            'energy_per_atom_min': float(energy_per_atom.min()) if len(natoms) else None,
            'energy_per_atom_max': float(energy_per_atom.max()) if len(natoms) else None,
            'content_hash': content_hash(arrays),
        }
        for key, value in attributes.items():
            self.base.attributes.set(key, value)

    # -- access -------------------------------------------------------------------------------------------

    def get_arrays(self) -> dict[str, np.ndarray]:
        """Return the flattened arrays (read once from the repository, then cached)."""
        cached = getattr(self, '_arrays_cache', None)
        if cached is None:
            with self.base.repository.open(self.FILENAME, mode='rb') as handle:
                cached = pacemaker_io.load_arrays(io.BytesIO(handle.read()))
            self._arrays_cache = cached
        return cached

    def get_array(self, name: str) -> np.ndarray:
        """Return one array, reading only that member of the file when the arrays are not cached."""
        cached = getattr(self, '_arrays_cache', None)
        if cached is not None:
            return cached[name]
        with self.base.repository.as_path(self.FILENAME) as path, np.load(path, allow_pickle=False) as handle:
            return handle[name]

    def get_atoms(self) -> list:
        """Return the structures as ``ase.Atoms`` with their labels on a ``SinglePointCalculator``."""
        from ase.calculators.singlepoint import SinglePointCalculator

        arrays = self.get_arrays()
        structures = pacemaker_io.build_atoms(arrays)
        forces = pacemaker_io.split_per_structure(arrays['forces'], arrays['natoms'])
        for index, atoms in enumerate(structures):
            labels = {'energy': float(arrays['energy'][index])}
            if arrays['has_forces'][index]:
                labels['forces'] = forces[index]
            if 'stress' in arrays and arrays['has_stress'][index]:
                labels['stress'] = arrays['stress'][index]
            atoms.calc = SinglePointCalculator(atoms, **labels)
            atoms.info['source'] = str(arrays['source'][index])
        return structures

    def get_sources(self) -> list[str]:
        """Return where each structure came from (e.g. ``ase_db:<sha256>:row=12``)."""
        return self.get_array('source').tolist()

    def __len__(self) -> int:
        return int(self.base.attributes.get('num_structures', 0))

    @property
    def num_structures(self) -> int:
        return len(self)

    @property
    def num_atoms(self) -> int:
        return int(self.base.attributes.get('num_atoms'))

    @property
    def elements(self) -> list[str]:
        return list(self.base.attributes.get('elements'))

    @property
    def has_forces(self) -> bool:
        return bool(self.base.attributes.get('has_forces'))

    @property
    def has_stress(self) -> bool:
        return bool(self.base.attributes.get('has_stress'))

    @property
    def content_hash(self) -> str:
        return self.base.attributes.get('content_hash')


def _symbol(number: int) -> str:
    from ase.data import chemical_symbols

    return chemical_symbols[int(number)]


def content_hash(arrays: dict[str, np.ndarray]) -> str:
    """Return a SHA-256 over the arrays' names, dtypes, shapes and bytes (in a fixed order)."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        value = np.ascontiguousarray(arrays[key])
        digest.update(f'{key}|{value.dtype.str}|{value.shape}|'.encode())
        digest.update(value.tobytes())
    return digest.hexdigest()
