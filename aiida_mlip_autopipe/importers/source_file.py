"""Bring a dataset file into AiiDA with provenance: the file node, deduplication, and the import calcfunction.

Every importer follows the same steps (:func:`import_file`):

1. the file is checked (missing, empty, corrupt, wrong format) and read **before anything is stored**, so a
   refused import leaves the database untouched;
2. an earlier import of the same bytes with the same options is returned as it is (content hash);
3. the file is stored as a ``SinglefileData`` (its SHA-256 in the ``sha256`` attribute, reused if the same
   bytes are already stored) and a calcfunction turns it into a ``TrainingSetData``, so the lineage reaches the
   exact file. The calcfunction reads the stored file it receives as input (a second read of the file: its input
   is all it uses, so the provenance is honest; no state is handed to it outside its inputs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
from collections.abc import Callable, Iterable
from typing import Any

from aiida import orm

from aiida_mlip_autopipe.data.training_set import TrainingSetBuilder, TrainingSetData

__all__ = (
    'DatasetImportError',
    'PendingImport',
    'build_with_policies',
    'check_policies',
    'file_sha256',
    'import_file',
    'load_or_read',
    'read_file',
    'store_source_file',
)

#: at most this many skipped row ids / frames are listed in ``import_info``
MAX_LISTED = 100

#: ``reader(path, sha256, **options) -> (arrays, report)``
Reader = Callable[..., tuple[dict, dict]]
Progress = Callable[[int], None]


class DatasetImportError(ValueError):
    """A dataset file cannot be imported (missing, empty, corrupt, wrong format, or refused by the policy)."""


def file_sha256(path: pathlib.Path) -> str:
    """Return the SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def check_readable(path: pathlib.Path) -> pathlib.Path:
    """Refuse a missing, unreadable or empty file with a message that names it."""
    path = pathlib.Path(path).expanduser()
    if not path.exists():
        raise DatasetImportError(f'{path}: no such file')
    if not path.is_file():
        raise DatasetImportError(f'{path}: not a regular file')
    if path.stat().st_size == 0:
        raise DatasetImportError(f'{path}: the file is empty')
    return path.resolve()


def check_policies(on_missing_forces: str, on_invalid: str) -> None:
    """Refuse unknown policy names."""
    if on_missing_forces not in ('refuse', 'skip', 'keep'):
        raise DatasetImportError(f"on_missing_forces={on_missing_forces!r}: use 'refuse', 'skip' or 'keep'")
    if on_invalid not in ('refuse', 'skip'):
        raise DatasetImportError(f"on_invalid={on_invalid!r}: use 'refuse' or 'skip'")


def build_with_policies(
    path: pathlib.Path,
    items: Iterable[tuple[int, dict]],
    noun: str,
    on_missing_forces: str,
    on_invalid: str,
    progress: Progress | None = None,
) -> tuple[dict, dict]:
    """Add ``(id, fields)`` items (``TrainingSetBuilder.add`` keywords) under the policies; return arrays, report.

    Structures without forces are refused, skipped or kept (``on_missing_forces``); invalid ones (no atoms, no
    energy, NaN/inf, bad shapes) are refused or skipped (``on_invalid``). Skips are counted, never silent.
    ``progress`` is called with the number of items read so far.
    """
    check_policies(on_missing_forces, on_invalid)
    builder = TrainingSetBuilder()
    seen, skipped_forces, skipped_invalid = 0, [], []
    for identifier, fields in items:
        seen += 1
        if progress is not None:
            progress(seen)
        if fields['forces'] is None and len(fields['numbers']) and on_missing_forces != 'keep':
            if on_missing_forces == 'refuse':
                raise DatasetImportError(
                    f'{path}: {noun} {identifier} has no forces (use on_missing_forces="skip" or "keep")'
                )
            skipped_forces.append(identifier)
            continue
        problem = builder.add(**fields)
        if problem:
            if on_invalid == 'refuse':
                raise DatasetImportError(f'{path}: {noun} {identifier}: {problem} (use on_invalid="skip")')
            skipped_invalid.append(identifier)
    if len(builder) == 0:
        raise DatasetImportError(
            f'{path}: no structure to import ({seen} {noun}s read, {len(skipped_forces)} skipped without forces, '
            f'{len(skipped_invalid)} skipped as invalid)'
        )
    report = {
        'read': seen,
        'imported': len(builder),
        'skipped_missing_forces': len(skipped_forces),
        'skipped_invalid': len(skipped_invalid),
        'skipped_ids': (skipped_forces + skipped_invalid)[:MAX_LISTED],
    }
    return builder.arrays(), report


def store_source_file(path: pathlib.Path, sha256: str) -> orm.SinglefileData:
    """Return the stored ``SinglefileData`` holding these bytes (an existing one if already stored)."""
    existing = (
        orm.QueryBuilder()
        .append(orm.SinglefileData, filters={'attributes.sha256': sha256}, project='*')
        .first(flat=True)
    )
    if existing is not None:
        return existing
    node = orm.SinglefileData(path)
    node.base.attributes.set('sha256', sha256)
    return node.store()


def find_import(kind: str, sha256: str, options: dict[str, str]) -> TrainingSetData | None:
    """Return a ``TrainingSetData`` imported earlier from the same bytes with the same options."""
    filters = {'attributes.import_info.format': kind, 'attributes.import_info.sha256': sha256}
    for key, value in options.items():
        filters[f'attributes.import_info.{key}'] = value
    return orm.QueryBuilder().append(TrainingSetData, filters=filters, project='*').first(flat=True)


@dataclasses.dataclass
class PendingImport:
    """A file read and checked but not stored yet (:func:`read_file`): :meth:`preview` is the data as an unstored
    node (to check it against settings), :meth:`store` imports it with provenance (steps 2 and 3)."""

    kind: str
    path: pathlib.Path
    sha256: str
    options: dict[str, str]
    calcfunction: Callable
    existing: TrainingSetData | None = None
    arrays: dict | None = None  # read in step 1, for preview; store() has the calcfunction read the stored file

    def preview(self) -> TrainingSetData:
        """The data: the earlier import of the same bytes and options, or an unstored node."""
        if self.existing is not None:
            return self.existing
        assert self.arrays is not None  # read_file sets it whenever there is no earlier import
        return TrainingSetData(arrays=self.arrays)

    def store(self) -> TrainingSetData:
        """The stored ``TrainingSetData`` (the earlier import, or a new one whose lineage reaches the file)."""
        if self.existing is not None:
            return self.existing
        source = store_source_file(self.path, self.sha256)
        return self.calcfunction(source, **{name: orm.Str(value) for name, value in self.options.items()})


def read_file(
    kind: str,
    path: str | pathlib.Path,
    reader: Reader,
    calcfunction: Callable,
    options: dict[str, str],
    progress: Progress | None = None,
) -> PendingImport:
    """Check and read ``path`` (step 1), storing nothing; an earlier import of it is found, not read again."""
    path = check_readable(pathlib.Path(path))
    sha256 = file_sha256(path)
    pending = PendingImport(kind, path, sha256, dict(options), calcfunction)
    pending.existing = find_import(kind, sha256, options)
    if pending.existing is None:
        pending.arrays, _ = reader(path, sha256, progress=progress, **options)
    return pending


def import_file(
    kind: str,
    path: str | pathlib.Path,
    reader: Reader,
    calcfunction: Callable,
    options: dict[str, str],
    progress: Progress | None = None,
) -> TrainingSetData:
    """Import ``path`` with ``reader`` (checks and reads) and ``calcfunction`` (provenance); see the module doc.

    ``progress`` is called with the number of rows / frames read so far."""
    return read_file(kind, path, reader, calcfunction, options, progress).store()


def load_or_read(kind: str, source: orm.SinglefileData, reader: Reader, options: dict[str, Any]) -> TrainingSetData:
    """Inside an import calcfunction: build the ``TrainingSetData`` from the stored file, its input."""
    options = {name: value.value for name, value in options.items()}
    sha256 = source.base.attributes.get('sha256')
    with source.as_path() as path:
        arrays, report = reader(path, sha256, **options)
    training_set = TrainingSetData(arrays=arrays)
    training_set.base.attributes.set(
        'import_info', {'format': kind, 'sha256': sha256, 'filename': source.filename, **options, **report}
    )
    return training_set
