"""Put a potential back on the scale of its training labels.

Pacemaker fits ``energy_corrected = energy - sum_i esa[el_i] + shift * N``: with ``data.reference_energy`` given as
a per-element dictionary or a preset name, or computed by itself (``auto``, or automatically when corrected energies
lie below -20 eV/atom, as absolute DFT energies do). It keeps the reference only as a JSON string in the YAML
potential's metadata (``reference_energy``), and ``pace_yaml2yace`` writes ``E0: [0, ...]`` into the ``.yace``, so
the potential's energies are off by ``sum_i (esa[el_i] - shift)``.

:func:`e0_per_element` turns pacemaker's metadata into that per-atom offset ``E0[el] = esa[el] - shift``;
:func:`with_e0` writes it into the ``.yace`` (``E0`` is the per-element energy pyace's calculator and LAMMPS's
``pair_style pace`` add per atom), so the stored potential gives energies comparable to the training labels.
A numeric ``reference_energy`` only copies ``energy`` to ``energy_corrected`` in pacemaker (no offset).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ('ReferenceEnergyError', 'e0_per_element', 'read_e0', 'with_e0')

E0_LINE = re.compile(r'^E0:\s*\[(?P<values>[^\]]*)\]\s*$', flags=re.MULTILINE)
ELEMENTS_LINE = re.compile(r'^elements:\s*\[(?P<values>[^\]]*)\]\s*$', flags=re.MULTILINE)


class ReferenceEnergyError(ValueError):
    """The reference energy in a potential's metadata, or the ``.yace`` to write it into, cannot be used."""


def preset_table(name: str) -> dict[str, float]:
    """Pacemaker's single-atom energies of the preset ``name`` (needs python-ace on this side)."""
    try:
        from pyace.process_df import SINGLE_ATOM_ENERGY_DICT
    except ImportError as exception:
        raise ReferenceEnergyError(
            f'reference_energy preset {name!r}: python-ace is needed on the AiiDA side to read its table'
        ) from exception
    if name not in SINGLE_ATOM_ENERGY_DICT:
        raise ReferenceEnergyError(f'unknown reference_energy preset {name!r}')
    return dict(SINGLE_ATOM_ENERGY_DICT[name])


def e0_per_element(metadata: dict[str, Any], elements: list[str]) -> tuple[dict[str, float], str]:
    """Return ``({element: E0}, source)`` from a YAML potential's ``metadata`` (``source``: what pacemaker had)."""
    raw = metadata.get('reference_energy')
    if raw in (None, ''):
        return {element: 0.0 for element in elements}, 'none'
    try:
        reference = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        reference = raw  # a preset name written without JSON quotes
    if isinstance(reference, str):
        table, source = preset_table(reference), f'preset {reference}'
    elif isinstance(reference, dict):
        table, source = reference, 'per-element reference energies'
    elif isinstance(reference, int | float):
        return {element: 0.0 for element in elements}, 'constant (pacemaker copies energy to energy_corrected)'
    else:
        raise ReferenceEnergyError(f'cannot read reference_energy {raw!r} from the potential metadata')
    shift = float(table.get('shift', 0.0))
    try:
        return {element: float(table.get(element, 0.0)) - shift for element in elements}, source
    except (TypeError, ValueError) as exception:
        raise ReferenceEnergyError(f'reference_energy {raw!r} has a non-numeric value') from exception


def _listed(match: re.Match | None, what: str) -> list[str]:
    if match is None:
        raise ReferenceEnergyError(f'the .yace has no one-line `{what}: [...]` entry')
    return [item.strip().strip('"\'') for item in match.group('values').split(',') if item.strip()]


def read_e0(yace: str) -> dict[str, float]:
    """Return the ``E0`` per element written in a ``.yace`` text."""
    elements = _listed(ELEMENTS_LINE.search(yace), 'elements')
    values = _listed(E0_LINE.search(yace), 'E0')
    if len(values) != len(elements):
        raise ReferenceEnergyError(f'the .yace lists {len(elements)} elements but {len(values)} E0 values')
    return {element: float(value) for element, value in zip(elements, values, strict=True)}


def with_e0(yace: str, e0: dict[str, float]) -> str:
    """Return the ``.yace`` text with ``E0`` set to ``e0`` (per element, in the file's element order)."""
    elements = _listed(ELEMENTS_LINE.search(yace), 'elements')
    read_e0(yace)  # the existing entry must be well-formed
    missing = [element for element in elements if element not in e0]
    if missing:
        raise ReferenceEnergyError(f'no E0 given for {", ".join(missing)}')
    values = ', '.join(repr(float(e0[element])) for element in elements)
    return E0_LINE.sub(lambda _: f'E0: [{values}]', yace, count=1)
