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

Which reference a fit uses is decided before the job (:func:`plan_reference_energy`), from the training data only:
pacemaker decides per file, so with a separate test file whose energies lie below -20 eV/atom while the training
energies do not, it would compute its automatic reference from the *test* set (and leave the training energies
uncorrected). The plugin then writes the reference explicitly into ``input.yaml``: the one pacemaker's ``auto``
computes on the training set (:func:`auto_reference`, the same least squares and shift), or zero per element.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase.data import chemical_symbols

from aiida_mlip_autopipe.potentials.bbasis import BBasisError, read_bbasis

__all__ = (
    'ReferenceEnergyError',
    'ReferencePlan',
    'auto_reference',
    'e0_per_element',
    'plan_reference_energy',
    'potential_header',
    'read_e0',
    'with_e0',
)

#: Pacemaker computes a reference itself when a corrected energy per atom lies outside this range (eV/atom).
EXTREME_ENERGY_PER_ATOM = (-20.0, 250.0)

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


def auto_reference(arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """Pacemaker's ``reference_energy: auto`` computed on the structures of ``arrays`` (the stable format).

    The port of ``pyace.process_df.compute_shifted_scaled_corrected_energy``: per-element energies by least
    squares (``pinv(composition) @ energy``), then a ``shift`` that puts the corrected energy of the structure
    with the largest volume per atom (the first such one) at zero; without a periodic volume the shift is 0.
    """
    natoms = np.asarray(arrays['natoms'], dtype=np.int64)
    numbers = np.asarray(arrays['numbers'])
    energy = np.asarray(arrays['energy'], dtype=float)

    present = sorted({chemical_symbols[number] for number in np.unique(numbers)})
    owner = np.repeat(np.arange(len(natoms)), natoms)
    composition = np.zeros((len(natoms), len(present)))
    for column, element in enumerate(present):
        np.add.at(composition[:, column], owner[numbers == chemical_symbols.index(element)], 1)
    esa = np.linalg.pinv(composition, rcond=1e-10) @ energy
    corrected_per_atom = (energy - composition @ esa) / natoms
    volume_per_atom = np.abs(np.linalg.det(np.asarray(arrays['cells'], dtype=float).reshape(-1, 3, 3))) / natoms
    shift = 0.0
    if len(natoms) and volume_per_atom.max() > 0:
        shift = -float(corrected_per_atom[np.flatnonzero(volume_per_atom >= volume_per_atom.max())[0]])
    return {**{element: float(value) for element, value in zip(present, esa, strict=True)}, 'shift': shift}


@dataclass(frozen=True)
class ReferencePlan:
    """The reference energy a fit uses: ``value`` is what the plugin writes as ``data.reference_energy`` (``None``:
    nothing, pacemaker decides as it would on the same file), ``source`` a short name, ``reason`` the why."""

    value: Any
    source: str
    reason: str

    def record(self) -> dict[str, str]:
        """The metrics keys that say which reference energy was used and why."""
        return {'reference_energy_source': self.source, 'reference_energy_reason': self.reason}


def _outside(energy_per_atom: np.ndarray) -> bool:
    low, high = EXTREME_ENERGY_PER_ATOM
    return bool(len(energy_per_atom)) and bool(energy_per_atom.min() < low or energy_per_atom.max() > high)


def plan_reference_energy(
    given: Any,
    initial_metadata: dict[str, Any] | None,
    arrays: dict[str, np.ndarray] | Callable[[], dict[str, np.ndarray]],
    has_test_file: bool,
) -> ReferencePlan:
    """Decide the reference energy of a fit from the settings, an initial potential and the **training** data.

    ``given``: the settings' ``data.reference_energy``; ``initial_metadata``: the metadata of the initial
    potential (pacemaker takes its ``reference_energy`` when the settings give none); ``arrays``: the training set
    (or a function that reads it, called only when needed); ``has_test_file``: whether pacemaker reads a separate
    test file (else it splits the training file itself, after it has computed any automatic reference on all of
    it, so both parts share one scale).
    """
    if given is not None:
        return ReferencePlan(None, 'settings', f'data.reference_energy={given!r} given in the settings')
    inherited = (initial_metadata or {}).get('reference_energy')
    if inherited not in (None, ''):
        return ReferencePlan(
            None,
            'initial_potential',
            f"the initial potential's metadata reference_energy={inherited}: pacemaker continues a fit on the "
            'scale it was fitted on when the settings give no data.reference_energy',
        )
    arrays = arrays() if callable(arrays) else arrays
    energy_per_atom = np.asarray(arrays['energy'], dtype=float) / np.asarray(arrays['natoms'], dtype=float)
    low, high = EXTREME_ENERGY_PER_ATOM
    if _outside(energy_per_atom):
        span = f'[{energy_per_atom.min():.3f}, {energy_per_atom.max():.3f}] eV/atom lie outside [{low:g}, {high:g}]'
        if has_test_file:
            return ReferencePlan(
                auto_reference(arrays),
                'auto (training_set)',
                f"the training energies per atom {span}: pacemaker's automatic reference, computed by the plugin "
                'on the training set only and written as data.reference_energy',
            )
        return ReferencePlan(
            None,
            'auto (pacemaker, training_set)',
            f'the training energies per atom {span}: pacemaker computes its automatic reference on the '
            'training_set (before any data.test_size split, so both parts share it)',
        )
    if has_test_file:
        zeros = {chemical_symbols[number]: 0.0 for number in sorted(set(np.asarray(arrays['numbers']).tolist()))}
        return ReferencePlan(
            dict(sorted(zeros.items())),
            'none',
            f'the training energies per atom lie within [{low:g}, {high:g}] eV/atom: fitted as given, with zero '
            'reference written as data.reference_energy (else pacemaker would take one from the test set)',
        )
    return ReferencePlan(None, 'none', f'the training energies per atom lie within [{low:g}, {high:g}] eV/atom')


def potential_header(text: str) -> tuple[list[str], dict[str, Any]]:
    """Return ``(elements, metadata)`` of a B-basis YAML potential (its single-element species blocks)."""
    try:
        summary = read_bbasis(text)
    except BBasisError as exception:
        raise ReferenceEnergyError(str(exception)) from exception
    return summary.elements, summary.metadata
