"""Convert between the plugin's stable dataset format and pacemaker's pickled DataFrames.

This file is copied into every pacemaker job and run with **pacemaker's own Python interpreter**, so that
the pickles pacemaker reads are written by the pandas pacemaker runs with (a pickle written by another
pandas version may not load). It must therefore depend only on numpy, ase and pandas, and stay importable
without the plugin installed. The plugin imports it too, so the format has exactly one reader.

The stable format (``.npz``, ``numpy.savez`` without pickles) holds ragged structures flattened:

* per atom: ``numbers`` (int), ``positions`` (Å), ``forces`` (eV/Å; zeros where ``has_forces`` is false)
* per structure: ``natoms``, ``cells`` (S, 3, 3; Å), ``pbc`` (S, 3), ``energy`` (eV), ``has_forces``,
  optionally ``stress`` (S, 6; Voigt xx yy zz yz xz xy, eV/Å³, ASE's sign) and ``has_stress``, ``source`` (str)

Usage (one interpreter start for all pairs of a job)::

    python pacemaker_io.py to-dataframe training_set.npz training_data.pckl.gzip [test_set.npz test_data.pckl.gzip]
    python pacemaker_io.py predictions train_pred.pckl.gzip train_predictions.npz [test_pred.pckl.gzip ...]
"""

from __future__ import annotations

import sys
from itertools import pairwise

import numpy as np

FORMAT = 'mlip_autopipe.structures.npz/1'
PER_ATOM = ('numbers', 'positions', 'forces')


def load_arrays(path) -> dict:
    """Return the arrays of a stable-format file (never unpickles)."""
    with np.load(path, allow_pickle=False) as handle:
        return {key: handle[key] for key in handle.files}


def offsets(natoms: np.ndarray) -> np.ndarray:
    """Return the start index of each structure in the per-atom arrays (length S + 1)."""
    result = np.zeros(len(natoms) + 1, dtype=np.int64)
    np.cumsum(natoms, out=result[1:])
    return result


def build_atoms(arrays: dict) -> list:
    """Return one ``ase.Atoms`` per structure (positions, numbers, cell, pbc; no labels attached); arrays that
    disagree in their lengths or shapes raise ``ValueError`` (slicing would silently cut structures short)."""
    from ase import Atoms

    bounds = offsets(arrays['natoms'])
    numbers, positions, cells, pbc = arrays['numbers'], arrays['positions'], arrays['cells'], arrays['pbc']
    count, atoms = len(arrays['natoms']), int(bounds[-1])
    shapes = {'numbers': (atoms,), 'positions': (atoms, 3), 'cells': (count, 3, 3), 'pbc': (count, 3)}
    for name, shape in shapes.items():
        found = np.shape(arrays[name])
        if found != shape:
            raise ValueError(f'{name} has shape {found}, expected {shape} ({count} structures, {atoms} atoms in all)')
    return [
        Atoms(numbers=numbers[start:stop], positions=positions[start:stop], cell=cells[index], pbc=pbc[index])
        for index, (start, stop) in enumerate(pairwise(bounds))
    ]


def atoms_arrays(structures: list) -> dict:
    """The geometry of ``ase.Atoms`` in the stable format (the inverse of :func:`build_atoms`; no labels)."""
    return {
        'natoms': np.asarray([len(atoms) for atoms in structures], dtype=np.int64),
        'numbers': np.concatenate([atoms.numbers for atoms in structures]).astype(np.int64)
        if structures
        else np.zeros(0, np.int64),
        'positions': np.concatenate([atoms.positions for atoms in structures]) if structures else np.zeros((0, 3)),
        'cells': np.asarray([np.asarray(atoms.cell) for atoms in structures]).reshape(-1, 3, 3),
        'pbc': np.asarray([atoms.pbc for atoms in structures], dtype=bool).reshape(-1, 3),
    }


def split_per_structure(values: np.ndarray, natoms: np.ndarray) -> list:
    """Split a per-atom array into one array per structure."""
    return np.split(values, offsets(natoms)[1:-1])


def to_dataframe(source_path: str, target_path: str) -> int:
    """Write pacemaker's gzip-pickled DataFrame (``ase_atoms``, ``energy``, ``energy_corrected``, ``forces``)."""
    import pandas as pd

    arrays = load_arrays(source_path)
    natoms = arrays['natoms']
    sources = arrays.get('source', np.full(len(natoms), '', dtype=str))
    frame = pd.DataFrame(
        {
            'name': [str(name) or f'structure_{index}' for index, name in enumerate(sources)],
            'ase_atoms': build_atoms(arrays),
            'energy': arrays['energy'],
            'energy_corrected': arrays['energy'],
            'forces': split_per_structure(arrays['forces'], natoms),
        }
    )
    frame.to_pickle(target_path, compression='gzip', protocol=4)
    return len(frame)


def predictions(source_path: str, target_path: str) -> int:
    """Turn pacemaker's ``*_pred.pckl.gzip`` into a stable ``.npz`` of reference and predicted E, F.

    ``energy`` / ``energy_pred`` are on the scale of the training labels: pacemaker predicts ``energy_corrected``
    (labels minus its reference energies), and ``energy - energy_corrected`` (the reference of each structure) is
    added back. ``energy_corrected`` / ``energy_corrected_pred`` keep pacemaker's own scale.
    """
    import pandas as pd

    frame = pd.read_pickle(source_path, compression='gzip')
    natoms = np.asarray(frame['NUMBER_OF_ATOMS'], dtype=np.int64)
    corrected = np.asarray(frame['energy_corrected'], dtype=float)
    corrected_pred = np.asarray(frame['energy_pred'], dtype=float)
    labels = np.asarray(frame['energy'], dtype=float) if 'energy' in frame else corrected
    result = {
        'natoms': natoms,
        'energy': labels,
        'energy_pred': corrected_pred + (labels - corrected),
        'energy_corrected': corrected,
        'energy_corrected_pred': corrected_pred,
        'forces': np.concatenate([np.asarray(f, dtype=float).reshape(-1, 3) for f in frame['forces']]),
        'forces_pred': np.concatenate([np.asarray(f, dtype=float).reshape(-1, 3) for f in frame['forces_pred']]),
        'name': np.asarray([str(name) for name in frame['name']]) if 'name' in frame else np.asarray([], dtype=str),
    }
    np.savez(target_path, **result)
    return len(frame)


def main(argv: list[str]) -> int:
    commands = {'to-dataframe': to_dataframe, 'predictions': predictions}
    if len(argv) < 3 or len(argv) % 2 == 0 or argv[0] not in commands:
        sys.stderr.write(f'usage: pacemaker_io.py {{{"|".join(commands)}}} SOURCE TARGET [SOURCE TARGET ...]\n')
        return 2
    import pandas

    for source, target in zip(argv[1::2], argv[2::2], strict=True):
        count = commands[argv[0]](source, target)
        sys.stdout.write(f'{argv[0]}: {count} structures {source} -> {target} (pandas {pandas.__version__})\n')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
