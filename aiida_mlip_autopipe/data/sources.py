"""Where each structure of a ``TrainingSetData`` came from: one string per structure, written by the importers and
the DFT collectors, read by the lineage. The one place that knows the format:

* a file: ``<kind>:<sha256[:16]>:<row|frame>=<id>[:uid=<ASE unique id>]`` (``kind``: ``ase_db`` or ``extxyz``);
* an AiiDA node: ``aiida:<uuid>[:frame=<step>]`` (the calculation that made the energy).
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ('FileSource', 'file_source', 'node_source', 'parse_file_source', 'parse_node_source')

FILE_KEYS = {'ase_db': 'row', 'extxyz': 'frame'}
NODE_SOURCE = re.compile(r'^aiida:([0-9a-f-]{36})(?::|$)')
FILE_SOURCE = re.compile(r'^(ase_db|extxyz):([0-9a-f]{16}):(?:row|frame)=(\d+)')
SHA_PREFIX = 16


class FileSource(NamedTuple):
    """A structure read from a file: its kind, the first 16 hex digits of the file's SHA-256, the row / frame."""

    kind: str
    sha256_prefix: str
    index: int  # type: ignore[assignment]  # shadows tuple.index; a field name callers use


def file_source(kind: str, sha256: str, index: int, unique_id: str | None = None) -> str:
    """The source of row (ASE db) or frame (extxyz) ``index`` of the file with hash ``sha256``."""
    text = f'{kind}:{sha256[:SHA_PREFIX]}:{FILE_KEYS[kind]}={index}'
    return f'{text}:uid={unique_id}' if unique_id is not None else text


def node_source(uuid: str, frame: int | None = None) -> str:
    """The source of a structure labelled by the AiiDA node ``uuid`` (``frame``: a step of its trajectory)."""
    return f'aiida:{uuid}' if frame is None else f'aiida:{uuid}:frame={frame}'


def parse_file_source(source: str) -> FileSource | None:
    """The file a source string names, or ``None`` for other sources."""
    match = FILE_SOURCE.match(source)
    return FileSource(match.group(1), match.group(2), int(match.group(3))) if match else None


def parse_node_source(source: str) -> str | None:
    """The UUID of the AiiDA node a source string names (the process that made the energy), or ``None``."""
    match = NODE_SOURCE.match(source)
    return match.group(1) if match else None
