"""Protocols: named, measured starting points for a training (``fast``, ``moderate``, ``precise``).

Each protocol is a YAML file beside this module, shaped as the inputs of the workflow it is for (aiida-quantumespresso's
convention): ``description`` and the inputs it sets, e.g. ``base.pacemaker.settings`` and ``base.max_iterations``.
``overrides`` are merged into it key by key (a nested dict updates, anything else replaces).
"""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any

import yaml

__all__ = ('DEFAULT_PROTOCOL', 'ProtocolMixin', 'available_protocols', 'load_protocol', 'recursive_merge')

#: The protocol used when none is named.
DEFAULT_PROTOCOL = 'moderate'


def available_protocols() -> dict[str, str]:
    """The protocols shipped with the plugin: ``{name: description}``."""
    folder = resources.files(__name__)
    names = sorted(entry.name[: -len('.yaml')] for entry in folder.iterdir() if entry.name.endswith('.yaml'))
    return {name: load_protocol(name)['description'] for name in names}


def load_protocol(name: str) -> dict[str, Any]:
    """The inputs of protocol ``name`` (with its ``description``); an unknown name is a ``ValueError``."""
    path = resources.files(__name__).joinpath(f'{name}.yaml')
    if not path.is_file():
        names = ', '.join(sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith('.yaml')))
        raise ValueError(f'unknown protocol {name!r}: choose one of {names}')
    return yaml.safe_load(path.read_text('utf-8'))


def recursive_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``overrides``: nested dicts are merged key by key, anything else replaces (a copy)."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = recursive_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class ProtocolMixin:
    """``get_available_protocols``, ``get_default_protocol`` and ``get_protocol_inputs`` for a workflow class."""

    @classmethod
    def get_default_protocol(cls) -> str:
        return DEFAULT_PROTOCOL

    @classmethod
    def get_available_protocols(cls) -> dict[str, dict[str, str]]:
        """``{name: {'description': ...}}``, as aiida-quantumespresso's workflows answer it."""
        return {name: {'description': text} for name, text in available_protocols().items()}

    @classmethod
    def get_protocol_inputs(cls, protocol: str | None = None, overrides: dict[str, Any] | None = None) -> dict:
        """The inputs of ``protocol`` (default: :data:`DEFAULT_PROTOCOL`) with ``overrides`` merged in."""
        inputs = load_protocol(protocol or cls.get_default_protocol())
        inputs.pop('description')
        return recursive_merge(inputs, overrides or {})
