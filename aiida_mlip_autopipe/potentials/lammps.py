"""Use a trained potential in LAMMPS: the ``pair_style`` / ``pair_coeff`` lines (with the ZBL baseline of a
delta-learned potential) and aiida-lammps's potential node."""

from __future__ import annotations

import re

from aiida import orm

from aiida_mlip_autopipe.baseline.delta import baseline_of

__all__ = ('lammps_commands', 'lammps_potential_data')

_FILENAME = re.compile(r'^[A-Za-z0-9_./\-]+$')


def lammps_commands(
    potential: orm.SinglefileData, filename: str = 'potential.yace', species: list[str] | None = None
) -> list[str]:
    """Return the LAMMPS lines (metal units) that use ``potential`` written to ``filename``.

    A delta-learned potential gets ``pair_style hybrid/overlay pace zbl inner outer`` with its baseline's ZBL terms.

    :param species: the element of each LAMMPS atom type, in type order (default: the potential's elements).
    """
    from ase.data import atomic_numbers

    if not _FILENAME.match(filename):
        raise ValueError(f'filename {filename!r}: use letters, digits and ._/- only')
    elements = list(potential.base.attributes.get('elements', []))
    species = list(species) if species is not None else elements
    unknown = [symbol for symbol in species if symbol not in elements]
    if unknown or not species:
        raise ValueError(f'species {species}: the potential covers {elements}')
    baseline = baseline_of(potential)
    if baseline is None:
        return ['units metal', 'pair_style pace', f'pair_coeff * * {filename} {" ".join(species)}']
    lines = [
        'units metal',
        f'pair_style hybrid/overlay pace zbl {baseline.inner!r} {baseline.outer!r}',
        f'pair_coeff * * pace {filename} {" ".join(species)}',
    ]
    for first, symbol in enumerate(species, start=1):
        for second in range(first, len(species) + 1):
            lines.append(
                f'pair_coeff {first} {second} zbl {atomic_numbers[symbol]} {atomic_numbers[species[second - 1]]}'
            )
    return lines


def lammps_potential_data(potential: orm.SinglefileData, species: list[str] | None = None):
    """Return an aiida-lammps ``LammpsPotentialData`` (``pair_style='pace'``, ``units='metal'``) for a potential.

    aiida-lammps's defaults say "unknown" units for ``pace``; ACE potentials are in metal units. A delta-learned
    potential is refused: ``LammpsPotentialData`` has one pair style, and the potential is not valid without its
    ZBL baseline (use :func:`lammps_commands`, which writes the ``hybrid/overlay`` lines).
    """
    import io

    try:
        from aiida_lammps.data.potential import LammpsPotentialData
    except ImportError as exception:
        raise ImportError('aiida-lammps is not installed: `pip install aiida-lammps`') from exception
    if baseline_of(potential) is not None:
        raise ValueError('a delta-learned potential needs its ZBL baseline: use lammps_commands(), not pair_style pace')
    elements = list(potential.base.attributes.get('elements', []))
    return LammpsPotentialData.get_or_create(
        source=io.BytesIO(potential.get_content(mode='rb')),
        filename=potential.filename,
        pair_style='pace',
        species=list(species) if species is not None else elements,
        atom_style='atomic',
        units='metal',
        extra_tags={
            'title': f'ACE potential {potential.uuid}',
            'generation_method': 'pacemaker fit (aiida-mlip-autopipe)',
        },
    )
