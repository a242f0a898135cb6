"""Use a trained potential in ASE: pyace's calculator, plus the ZBL baseline when delta-learned and the reference
energies for the B-basis YAML; the extrapolation grade with an active set."""

from __future__ import annotations

import pathlib
import tempfile

import numpy as np
from aiida import orm
from ase.calculators.calculator import Calculator
from ase.calculators.mixing import SumCalculator

from aiida_mlip_autopipe.baseline.delta import baseline_of
from aiida_mlip_autopipe.baseline.zbl import ZBLCalculator

__all__ = ('DeltaCalculator', 'ElementEnergyCalculator', 'b_basis_of', 'get_calculator')


class ElementEnergyCalculator(Calculator):
    """A constant energy per atom of each element (a potential's reference energies); no forces, no stress."""

    implemented_properties = ['energy', 'free_energy', 'energies', 'forces', 'stress']

    def __init__(self, energies: dict[str, float]):
        super().__init__()
        self.element_energies = dict(energies)

    def calculate(self, atoms=None, properties=('energy',), system_changes=None):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if atoms is None:
            raise ValueError('ElementEnergyCalculator: no atoms to calculate')
        per_atom = np.asarray([self.element_energies.get(symbol, 0.0) for symbol in atoms.get_chemical_symbols()])
        self.results = {
            'energy': float(per_atom.sum()),
            'free_energy': float(per_atom.sum()),
            'energies': per_atom,
            'forces': np.zeros((len(atoms), 3)),
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
    others: list[Calculator] = []
    reference = source.base.attributes.get('reference_energy', None) or {}
    if source.filename.endswith(('.yaml', '.yml')) and any(reference.values()):
        others.append(ElementEnergyCalculator(reference))  # the B-basis YAML has no E0 of its own
    baseline = baseline_of(potential)
    if baseline is not None:
        others.append(ZBLCalculator(baseline.inner, baseline.outer))
    return DeltaCalculator(ace, *others) if others else ace
