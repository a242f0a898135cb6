"""Labellers of the active-learning loop: they give selected structures energies and forces, behind one small
interface (:class:`~aiida_mlip_autopipe.labellers.base.Labeller`).

* ``ase:emt`` (:mod:`.emt`): ASE's EMT in a calcfunction; for tests, demos and a quick loop, marked as not DFT;
* Quantum ESPRESSO (:mod:`.pw`): one aiida-quantumespresso ``PwBaseWorkChain`` per structure, the real one.

Another AiiDA DFT code is one small adapter: a subclass of ``Labeller`` with ``launch`` and ``collect``.
"""
