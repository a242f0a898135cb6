"""The physics of a potential, for any ASE calculator: pure functions on ``ase.Atoms`` (no AiiDA).

Each property module (:mod:`.eos`, :mod:`.elastic`, :mod:`.vacancy`, :mod:`.phonons`) splits its work in two, so
that the reference side can be labelled by any labeller (EMT, a DFT code through AiiDA):

* ``structures(atoms, **options) -> list[Atoms]``: the single-point calculations the property needs;
* ``analyse(atoms, labelled, **options) -> (results, arrays)``: the property from those structures, labelled (energy,
  forces, stress on each one's calculator), in the same order;
* ``compute(atoms, calc, **options)``: both at once with an ASE calculator (plus what needs the calculator itself,
  such as the relaxed vacancy).

:mod:`.md` needs the calculator throughout (``compute`` only). ``results`` maps quantity names to numbers in the
units of the module's ``UNITS``; ``arrays`` holds curves (EOS points, phonon bands, MD traces).
"""

from aiida_mlip_autopipe.validation import elastic, eos, md, phonons, vacancy
from aiida_mlip_autopipe.validation.common import PROPERTIES, label_all

__all__ = ('PROPERTIES', 'elastic', 'eos', 'label_all', 'md', 'phonons', 'vacancy')
