"""Import an ASE database (SQLite ``.db`` or ``.json``) as a ``TrainingSetData``, with provenance.

Each structure keeps its origin as ``ase_db:<sha256[:16]>:row=<id>:uid=<unique_id>``. Rows without forces, rows
with NaN/inf values or without energy, and rows with no atoms are handled by an explicit policy and counted in
the node's ``import_info`` attribute; nothing is dropped silently.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import sqlite3
import tempfile
from typing import Literal

from aiida import orm
from aiida.engine import calcfunction

from aiida_mlip_autopipe.data.sources import file_source
from aiida_mlip_autopipe.data.training_set import TrainingSetData
from aiida_mlip_autopipe.importers.source_file import (
    DatasetImportError,
    PendingImport,
    Progress,
    build_with_policies,
    check_policies,
    load_or_read,
    read_file,
)

__all__ = (
    'ase_db_to_training_set',
    'check_ase_db',
    'check_selection',
    'import_ase_db',
    'read_ase_db',
    'read_ase_db_file',
)

KIND = 'ase_db'
MissingForcesPolicy = Literal['refuse', 'skip', 'keep']
InvalidPolicy = Literal['refuse', 'skip']
SQLITE_MAGIC = b'SQLite format 3\x00'


def check_ase_db(path: pathlib.Path) -> str:
    """Return ``'db'`` or ``'json'`` if ``path`` is an ASE database; refuse anything else without touching it."""
    with open(path, 'rb') as handle:
        head = handle.read(16)
    if head == SQLITE_MAGIC:
        try:
            connection = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
            try:
                tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            finally:
                connection.close()
        except sqlite3.DatabaseError as exception:
            raise DatasetImportError(f'{path}: corrupt SQLite file ({exception})') from exception
        if not {'systems', 'keys', 'information'} <= tables:
            raise DatasetImportError(
                f'{path}: an SQLite file but not an ASE database (tables: {", ".join(sorted(tables)) or "none"})'
            )
        return 'db'
    if head.lstrip()[:1] == b'{':
        try:
            document = json.loads(pathlib.Path(path).read_text())
        except (ValueError, UnicodeDecodeError) as exception:
            raise DatasetImportError(f'{path}: corrupt JSON ({exception})') from exception
        if not isinstance(document, dict) or 'ids' not in document:
            raise DatasetImportError(f'{path}: a JSON file but not an ASE database (no "ids" key)')
        return 'json'
    raise DatasetImportError(f'{path}: neither an ASE SQLite (.db) nor an ASE JSON database')


_KEY = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


def check_selection(selection: str | None) -> None:
    """Refuse a selection ASE would read as something else: ASE's parser turns ``'energy<<0'`` into the
    comparisons ``'' > 'energy'`` and ``'' < 0`` (matching nothing, silently); every key must be a plain name
    (or an element, which ASE turns into its atomic number)."""
    from ase.db.core import parse_selection

    if not selection:
        return
    shown = selection if len(selection) <= 80 else f'{selection[:77]}...'
    try:
        keys, comparisons = parse_selection(selection)
    except Exception as exception:  # ASE raises ValueError, IndexError... on malformed strings
        raise DatasetImportError(
            f'selection {shown!r} is not an ASE query: {type(exception).__name__}: {exception}'
        ) from exception
    names = list(keys) + [key for key, _, _ in comparisons if not isinstance(key, int)]
    bad = [name for name in names if not isinstance(name, str) or not _KEY.match(name)]
    if bad:
        raise DatasetImportError(
            f'selection {shown!r} is not an ASE query: {str(bad[0])[:40]!r} is not a key '
            '(write e.g. "energy<0,config_type=bulk")'
        )


def _absent_keys(database, selection: str) -> str:
    """``'; no row has the key(s) ...'`` for the keys of ``selection`` that neither ASE reserves nor any row holds
    (a misspelt ``energyy<0`` matches nothing, silently, in ASE)."""
    from ase.db.core import parse_selection, reserved_keys

    try:
        keys, comparisons = parse_selection(selection)
    except Exception:  # checked before: cannot happen
        return ''
    names = dict.fromkeys(list(keys) + [key for key, _, _ in comparisons if isinstance(key, str)])
    absent = [name for name in names if name not in reserved_keys and not database.count(name)]
    return f'; no row has the key(s) {", ".join(map(repr, absent))} (misspelt?)' if absent else ''


def read_ase_db(
    path: pathlib.Path,
    sha256: str,
    selection: str = '',
    on_missing_forces: MissingForcesPolicy = 'refuse',
    on_invalid: InvalidPolicy = 'refuse',
    progress: Progress | None = None,
) -> tuple[dict, dict]:
    """Read the selected rows into the stable arrays; return ``(arrays, report)``.

    The database is read from a temporary copy (ASE may write indexes when it connects): the user's file is
    never modified. ``sha256`` is the file's hash (for the sources); ``selection`` is an ASE query string such
    as ``'config_type=bulk,energy<0'``.
    """
    from ase.db import connect

    kind = check_ase_db(pathlib.Path(path))
    check_policies(on_missing_forces, on_invalid)
    check_selection(selection)

    def rows(database):
        for row in database.select(selection or None):
            yield (
                row.id,
                {
                    'numbers': row.numbers,
                    'positions': row.positions,
                    'cell': row.cell,
                    'pbc': row.pbc,
                    'energy': row.get('energy'),
                    'forces': row.get('forces'),
                    'stress': row.get('stress'),
                    'source': file_source(KIND, sha256, row.id, row.unique_id),
                },
            )

    with tempfile.TemporaryDirectory() as directory:
        copy = pathlib.Path(directory) / f'copy.{kind}'
        shutil.copyfile(path, copy)
        try:
            database = connect(str(copy), type=kind)
            return build_with_policies(path, rows(database), 'row', on_missing_forces, on_invalid, progress)
        except DatasetImportError:
            if selection and not database.count(selection):
                raise DatasetImportError(
                    f'{path}: no structure to import: the selection {selection!r} matches none of its '
                    f'{database.count()} rows{_absent_keys(database, selection)}'
                ) from None
            raise
        except Exception as exception:  # ASE raises many kinds on bad query strings or broken rows
            raise DatasetImportError(
                f'{path}: reading rows (selection {selection!r}) failed: {type(exception).__name__}: {exception}'
            ) from exception


@calcfunction
def ase_db_to_training_set(
    database: orm.SinglefileData, selection: orm.Str, on_missing_forces: orm.Str, on_invalid: orm.Str
) -> TrainingSetData:
    """Turn the stored ASE database file into a ``TrainingSetData`` (the file is this node's input)."""
    options = {'selection': selection, 'on_missing_forces': on_missing_forces, 'on_invalid': on_invalid}
    return load_or_read(KIND, database, read_ase_db, options)


def read_ase_db_file(
    path: str | pathlib.Path,
    selection: str | None = None,
    on_missing_forces: MissingForcesPolicy = 'refuse',
    on_invalid: InvalidPolicy = 'refuse',
    progress: Progress | None = None,
) -> PendingImport:
    """:func:`import_ase_db` up to the point where it stores: the checked data, to be stored with ``.store()``."""
    options = {'selection': selection or '', 'on_missing_forces': on_missing_forces, 'on_invalid': on_invalid}
    return read_file(KIND, path, read_ase_db, ase_db_to_training_set, options, progress)


def import_ase_db(
    path: str | pathlib.Path,
    selection: str | None = None,
    on_missing_forces: MissingForcesPolicy = 'refuse',
    on_invalid: InvalidPolicy = 'refuse',
    progress: Progress | None = None,
) -> TrainingSetData:
    """Import an ASE database as a ``TrainingSetData`` whose lineage reaches the database file.

    :param path: the ``.db`` (SQLite) or ``.json`` ASE database.
    :param selection: an ASE query string (e.g. ``'config_type=bulk,energy<0'``); all rows when omitted.
    :param on_missing_forces: rows without forces: ``'refuse'`` (raise), ``'skip'`` (count and leave out) or
        ``'keep'`` (import without forces; a training workflow then refuses them with a named exit code).
    :param on_invalid: rows with NaN/inf values, no energy or no atoms: ``'refuse'`` or ``'skip'``.
    :param progress: called with the number of rows read so far (a progress bar).
    :raises DatasetImportError: before anything is stored, for a missing, empty, corrupt or non-ASE file, a bad
        selection, or a row the policy refuses.
    :return: the stored ``TrainingSetData``; the same node again when this file was already imported with the
        same selection and policies. Counts are in its ``import_info`` attribute.
    """
    return read_ase_db_file(path, selection, on_missing_forces, on_invalid, progress).store()
