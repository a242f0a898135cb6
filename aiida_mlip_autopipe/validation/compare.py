"""A potential against a reference, property by property: what the reference must label, the two sides' results,
and the table ``{quantity: {potential, reference, error, relative_error, unit}}``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

from aiida_mlip_autopipe.validation import elastic, eos, md, phonons, vacancy
from aiida_mlip_autopipe.validation.common import find_labelled

__all__ = ('MODULES', 'UNITS', 'potential_side', 'reference_side', 'reference_structures', 'table')

#: the property modules by name
MODULES = {'eos': eos, 'elastic': elastic, 'vacancy': vacancy, 'phonons': phonons, 'md': md}

#: the unit of every quantity of the table
UNITS = {name: unit for module in MODULES.values() for name, unit in module.UNITS.items()}

#: the properties whose reference comes from single points (``structures`` + ``analyse``)
LABELLED = ('eos', 'elastic', 'vacancy', 'phonons')


def _structure_options(name: str, options: dict) -> dict:
    """The options ``structures`` of a module takes."""
    keys = {'eos': ('points', 'volume_range'), 'elastic': ('strain', 'points')}.get(name, ('supercell', 'displacement'))
    if name == 'vacancy':
        keys = ('supercell', 'index')
    return {key: options[key] for key in keys if key in options}


def reference_structures(atoms: Atoms, properties: dict[str, dict]) -> dict[str, list[Atoms]]:
    """The single-point structures the reference must label, per property (those with single points only)."""
    return {
        name: MODULES[name].structures(atoms, **_structure_options(name, options))
        for name, options in properties.items()
        if name in LABELLED
    }


def _analyse_options(name: str, options: dict) -> dict:
    return {key: value for key, value in options.items() if name != 'vacancy' or key in ('supercell', 'index')}


def potential_side(atoms: Atoms, calc, properties: dict[str, dict]) -> tuple[dict, dict]:
    """Every requested property with ``calc`` (flat ``results``: quantity -> value; ``arrays``)."""
    results, arrays = {}, {}
    for name, options in properties.items():
        values, curves = MODULES[name].compute(atoms, calc, **options)
        results.update(values)
        arrays.update(curves)
    return results, arrays


def reference_side(
    atoms: Atoms, properties: dict[str, dict], labelled: Sequence[Atoms], calc=None
) -> tuple[dict, dict]:
    """The properties from the reference's ``labelled`` structures (found by geometry among them).

    With ``calc`` (a model reference such as EMT, computed in place) also what needs a calculator throughout: the
    relaxed vacancy and MD; without it those are absent (a DFT reference labels single points only)."""
    results, arrays = {}, {}
    for name, wanted in reference_structures(atoms, properties).items():
        found = []
        for structure in wanted:
            index = find_labelled(structure, labelled)
            if index is None:
                raise ValueError(f'{name}: the reference has no label of a {structure.get_chemical_formula()} cell')
            found.append(labelled[index])
        values, curves = MODULES[name].analyse(atoms, found, **_analyse_options(name, properties[name]))
        results.update(values)
        arrays.update(curves)
    if calc is not None:
        if 'vacancy' in properties:
            results['E_vac_relaxed'] = vacancy.compute(atoms, calc, **properties['vacancy'])[0]['E_vac_relaxed']
        if 'md' in properties:
            values, curves = md.compute(atoms, calc, **properties['md'])
            results.update(values)
            arrays.update(curves)
    return results, arrays


def _row(potential, reference, unit: str) -> dict:
    error = relative = None
    if _number(potential) and _number(reference):
        error = float(potential) - float(reference)
        relative = error / abs(float(reference)) if float(reference) != 0 else None
    return {'potential': potential, 'reference': reference, 'error': error, 'relative_error': relative, 'unit': unit}


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and bool(np.isfinite(value))


def table(potential: dict, reference: dict, potential_arrays: dict, reference_arrays: dict) -> dict:
    """``{quantity: {potential, reference, error, relative_error, unit}}`` of the numeric quantities of both sides
    (``None`` where a side lacks one); ``phonon_rmse`` (THz) compares the two band structures: its ``potential`` is
    the RMSE, its ``reference`` 0, its ``relative_error`` the RMSE over the reference's highest frequency."""
    rows = {}
    for quantity, unit in UNITS.items():
        if quantity in potential or quantity in reference:
            rows[quantity] = _row(potential.get(quantity), reference.get(quantity), unit)
    if 'phonon_frequencies' in potential_arrays and 'phonon_frequencies' in reference_arrays:
        rmse = phonons.band_rmse(potential_arrays['phonon_frequencies'], reference_arrays['phonon_frequencies'])
        top = float(np.max(reference_arrays['phonon_frequencies']))
        rows['phonon_rmse'] = {
            'potential': rmse,
            'reference': 0.0,
            'error': rmse,
            'relative_error': rmse / top if top > 0 else None,
            'unit': 'THz',
        }
    return rows
