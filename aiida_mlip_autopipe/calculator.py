"""Use a trained potential: an ASE calculator (pyace) and the LAMMPS input lines."""

from __future__ import annotations

import pathlib
import re
import tempfile

from aiida import orm

__all__ = ('get_calculator', 'lammps_commands')

_FILENAME = re.compile(r'^[A-Za-z0-9_./\-]+$')


def _b_basis_of(potential: orm.SinglefileData) -> orm.SinglefileData:
    """Return the B-basis YAML node of ``potential`` (itself, or the ``potential_yaml`` of the same fit)."""
    if potential.filename.endswith(('.yaml', '.yml')):
        return potential
    creator = potential.creator
    if creator is not None and 'potential_yaml' in creator.outputs:
        return creator.outputs.potential_yaml
    raise ValueError(f'{potential.filename}: no B-basis YAML found beside it; the active set needs the .yaml basis')


def get_calculator(potential: orm.SinglefileData, active_set: orm.SinglefileData | None = None):
    """Return an ASE calculator (pyace's ``PyACECalculator``) for a potential node.

    With ``active_set`` (an ``.asi`` node) the B-basis YAML of the same fit is loaded instead of the ``.yace``,
    so that the extrapolation grade is available as ``calc.results['gamma']``.
    """
    from pyace import PyACECalculator

    if potential.base.attributes.get('delta_learning') is not None:
        raise NotImplementedError('delta-learned potentials need their ZBL baseline, which is not supported yet')
    source = _b_basis_of(potential) if active_set is not None else potential
    with tempfile.TemporaryDirectory() as directory:
        path = pathlib.Path(directory) / source.filename
        path.write_bytes(source.get_content(mode='rb'))
        calculator = PyACECalculator(str(path))
        if active_set is not None:
            asi = pathlib.Path(directory) / active_set.filename
            asi.write_bytes(active_set.get_content(mode='rb'))
            calculator.set_active_set(str(asi))
    return calculator


def lammps_commands(
    potential: orm.SinglefileData, filename: str = 'potential.yace', species: list[str] | None = None
) -> list[str]:
    """Return the LAMMPS lines (metal units) that use ``potential`` written to ``filename``.

    :param species: the element of each LAMMPS atom type, in type order (default: the potential's elements).
    """
    if not _FILENAME.match(filename):
        raise ValueError(f'filename {filename!r}: use letters, digits and ._/- only')
    elements = list(potential.base.attributes.get('elements', []))
    species = list(species) if species is not None else elements
    unknown = [symbol for symbol in species if symbol not in elements]
    if unknown or not species:
        raise ValueError(f'species {species}: the potential covers {elements}')
    if potential.base.attributes.get('delta_learning') is not None:
        raise NotImplementedError('delta-learned potentials need their ZBL baseline, which is not supported yet')
    return ['units metal', 'pair_style pace', f'pair_coeff * * {filename} {" ".join(species)}']
