"""Use a trained potential: an ASE calculator (pyace, plus the ZBL baseline when delta-learned) and LAMMPS lines."""

from __future__ import annotations

import pathlib
import re
import tempfile

import numpy as np
from aiida import orm
from ase.calculators.calculator import Calculator
from ase.calculators.mixing import SumCalculator

from aiida_mlip_autopipe.delta import baseline_of
from aiida_mlip_autopipe.zbl import ZBLCalculator

__all__ = ('DeltaCalculator', 'ElementEnergyCalculator', 'get_calculator', 'lammps_commands', 'lammps_potential_data')

_FILENAME = re.compile(r'^[A-Za-z0-9_./\-]+$')


class ElementEnergyCalculator(Calculator):
    """A constant energy per atom of each element (a potential's reference energies); no forces, no stress."""

    implemented_properties = ('energy', 'free_energy', 'energies', 'forces', 'stress')

    def __init__(self, energies: dict[str, float]):
        super().__init__()
        self.element_energies = dict(energies)

    def calculate(self, atoms=None, properties=('energy',), system_changes=None):
        super().calculate(atoms, properties, system_changes)
        per_atom = np.asarray([self.element_energies.get(symbol, 0.0) for symbol in self.atoms.get_chemical_symbols()])
        self.results = {
            'energy': float(per_atom.sum()),
            'free_energy': float(per_atom.sum()),
            'energies': per_atom,
            'forces': np.zeros((len(self.atoms), 3)),
            'stress': np.zeros(6),
        }


class DeltaCalculator(SumCalculator):
    """ACE plus other terms (the ZBL baseline, reference energies); exposes the ACE part's ``gamma`` if available."""

    def __init__(self, ace, *others):
        super().__init__([ace, *others])
        self.ace = ace

    def calculate(self, atoms=None, properties=('energy',), system_changes=None):
        from ase.calculators.calculator import all_changes

        super().calculate(atoms, properties, system_changes if system_changes is not None else all_changes)
        if 'gamma' in self.ace.results:
            self.results['gamma'] = self.ace.results['gamma']


def b_basis_of(potential: orm.SinglefileData) -> orm.SinglefileData:
    """Return the B-basis YAML node of ``potential`` (itself, or the ``potential_yaml`` of the same fit)."""
    if potential.filename.endswith(('.yaml', '.yml')):
        return potential
    creator = potential.creator
    if creator is not None and 'potential_yaml' in creator.outputs:
        return creator.outputs.potential_yaml
    raise ValueError(f'{potential.filename}: no B-basis YAML found beside it; the active set needs the .yaml basis')


def get_calculator(potential: orm.SinglefileData, active_set: orm.SinglefileData | None = None):
    """Return an ASE calculator for a potential node: pyace's ``PyACECalculator``, summed with its ZBL baseline
    when the potential was delta-learned (never without it). Energies are on the scale of the training labels (the
    ``.yace`` carries the reference energies as ``E0``; for the B-basis YAML they are added here).

    With ``active_set`` (an ``.asi`` node) the B-basis YAML of the same fit is loaded instead of the ``.yace``, so
    that the extrapolation grade is available as ``calc.results['gamma']`` (per atom).
    """
    from pyace import PyACECalculator

    source = b_basis_of(potential) if active_set is not None else potential
    with tempfile.TemporaryDirectory() as directory:
        path = pathlib.Path(directory) / source.filename
        path.write_bytes(source.get_content(mode='rb'))
        ace = PyACECalculator(str(path))
        if active_set is not None:
            asi = pathlib.Path(directory) / active_set.filename
            asi.write_bytes(active_set.get_content(mode='rb'))
            ace.set_active_set(str(asi))
    others = []
    reference = source.base.attributes.get('reference_energy', None) or {}
    if source.filename.endswith(('.yaml', '.yml')) and any(reference.values()):
        others.append(ElementEnergyCalculator(reference))  # the B-basis YAML has no E0 of its own
    baseline = baseline_of(potential)
    if baseline is not None:
        others.append(ZBLCalculator(baseline.inner, baseline.outer))
    return DeltaCalculator(ace, *others) if others else ace


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
