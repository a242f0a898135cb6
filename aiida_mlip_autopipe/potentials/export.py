"""Write exported files into a user's directory safely: never through a symbolic link, never over an existing
file unless asked, and atomically (a temporary file in the same directory, then a rename), so that a reader sees
the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import tempfile
from collections.abc import Mapping

__all__ = ('ExportError', 'target_problem', 'write_files')


class ExportError(ValueError):
    """A file cannot be written where asked (it exists, it is a link or a directory)."""


def target_problem(target: pathlib.Path, overwrite: bool, force_hint: str, shown: str | None = None) -> str | None:
    """Why ``target`` must not be written, or ``None`` (``shown``: how the message names it, by default its path)."""
    if not os.path.lexists(target):
        return None
    if target.is_symlink():
        if overwrite:
            return None  # the link itself is replaced by the rename; its target is never written
        link = os.readlink(target)
        return f'{shown or target} is a symbolic link (to {link}): not written through; {force_hint} replaces the link'
    if target.is_dir():
        return f'{shown or target} is a directory: not replaced'
    if not overwrite:
        return f'{shown or target} exists: not replaced ({force_hint} replaces it)'
    return None


def write_files(
    directory: pathlib.Path, files: Mapping[str, bytes], overwrite: bool = False, force_hint: str = '--force'
) -> list[pathlib.Path]:
    """Write ``files`` (name -> content) into ``directory``; return their paths.

    Every target is checked before the first is written: an existing file (without ``overwrite``), a symbolic link
    (without ``overwrite``; with it the link is replaced, its target untouched) or a directory is an
    :class:`ExportError` naming the directory once and each file by its name, and nothing is written. Each file
    goes to a temporary file beside it, then is renamed into place; without ``overwrite`` the rename is a hard link
    that fails if the name was taken in the meantime. ``force_hint`` is how the caller asks for ``overwrite``
    (``--force``, ``overwrite=True``).
    """
    directory = pathlib.Path(directory)
    targets = {}
    for name, content in files.items():
        if pathlib.PurePath(name).name != name or name in ('', '.', '..'):
            raise ExportError(f'{name!r} is not a plain file name')
        targets[directory / name] = content
    problems = [
        problem for target in targets if (problem := target_problem(target, overwrite, force_hint, target.name))
    ]
    if problems:
        raise ExportError(f'in {directory}: ' + '; '.join(problems))
    written = []
    for target, content in targets.items():
        _write_one(target, content, overwrite, force_hint)
        written.append(target)
    return written


def _write_one(target: pathlib.Path, content: bytes, overwrite: bool, force_hint: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f'.{target.name}.', suffix='.tmp')
    try:
        with os.fdopen(handle, 'wb') as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644 & ~_umask())
        if overwrite:
            os.replace(temporary, target)  # replaces a file or a link (not what a link points to)
            return
        try:
            os.link(temporary, target, follow_symlinks=False)  # atomic, and never over an existing name
        except FileExistsError:
            raise ExportError(f'{target} exists: not replaced ({force_hint} replaces it)') from None
        except OSError as exception:
            if exception.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            if os.path.lexists(target):  # a file system without hard links: check, then rename
                raise ExportError(f'{target} exists: not replaced ({force_hint} replaces it)') from None
            os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
