"""Import an extended-XYZ file (energies in the comment line, forces as a per-atom column) as a ``TrainingSetData``.

Each structure keeps its origin as ``extxyz:<sha256[:16]>:frame=<index>``. The policies are those of
:mod:`aiida_mlip_autopipe.importers.ase_db`.
"""

from __future__ import annotations

import pathlib

from aiida import orm
from aiida.engine import calcfunction

from aiida_mlip_autopipe.data.sources import file_source
from aiida_mlip_autopipe.data.training_set import TrainingSetData, labels_of
from aiida_mlip_autopipe.importers.ase_db import InvalidPolicy, MissingForcesPolicy
from aiida_mlip_autopipe.importers.source_file import (
    DatasetImportError,
    Progress,
    build_with_policies,
    check_policies,
    import_file,
    load_or_read,
)

__all__ = ('extxyz_to_training_set', 'import_extxyz', 'read_extxyz')

KIND = 'extxyz'


def read_extxyz(
    path: pathlib.Path,
    sha256: str,
    on_missing_forces: MissingForcesPolicy = 'refuse',
    on_invalid: InvalidPolicy = 'refuse',
    progress: Progress | None = None,
) -> tuple[dict, dict]:
    """Read every frame into the stable arrays (``sha256``: the file's hash); return ``(arrays, report)``."""
    from ase.io import iread

    check_policies(on_missing_forces, on_invalid)

    def frames():
        for index, atoms in enumerate(iread(str(path), index=':', format='extxyz')):
            energy, forces, stress = labels_of(atoms)
            yield (
                index,
                {
                    'numbers': atoms.numbers,
                    'positions': atoms.positions,
                    'cell': atoms.cell[:],
                    'pbc': atoms.pbc,
                    'energy': energy,
                    'forces': forces,
                    'stress': stress,
                    'source': file_source(KIND, sha256, index),
                },
            )

    try:
        return build_with_policies(path, frames(), 'frame', on_missing_forces, on_invalid, progress)
    except DatasetImportError:
        raise
    except Exception as exception:  # ASE's reader raises many kinds on malformed files
        raise DatasetImportError(
            f'{path}: not a readable extxyz file: {type(exception).__name__}: {exception}'
        ) from exception


@calcfunction
def extxyz_to_training_set(xyz: orm.SinglefileData, on_missing_forces: orm.Str, on_invalid: orm.Str) -> TrainingSetData:
    """Turn the stored extxyz file into a ``TrainingSetData`` (the file is this node's input)."""
    options = {'on_missing_forces': on_missing_forces, 'on_invalid': on_invalid}
    return load_or_read(KIND, xyz, read_extxyz, options)


def import_extxyz(
    path: str | pathlib.Path,
    on_missing_forces: MissingForcesPolicy = 'refuse',
    on_invalid: InvalidPolicy = 'refuse',
    progress: Progress | None = None,
) -> TrainingSetData:
    """Import an extxyz file as a ``TrainingSetData`` whose lineage reaches the file (see ``import_ase_db``)."""
    options: dict[str, str] = {'on_missing_forces': on_missing_forces, 'on_invalid': on_invalid}
    return import_file(KIND, path, read_extxyz, extxyz_to_training_set, options, progress)
