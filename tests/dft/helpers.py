"""The shared pw.x settings and builders of the DFT tests (Al cells, one scf each)."""

from __future__ import annotations

import numpy as np

#: The PW settings every collected calculation shares (they decide the absolute energies).
PW_PARAMETERS = {
    'CONTROL': {'calculation': 'scf', 'tprnfor': True, 'tstress': True},
    'SYSTEM': {'ecutwfc': 20.0, 'occupations': 'smearing', 'smearing': 'mv', 'degauss': 0.02},
    'ELECTRONS': {'conv_thr': 1e-8},
}

KPOINTS_DISTANCE = 0.45

OPTIONS = {
    'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
    'withmpi': False,
    'environment_variables': {'OMP_NUM_THREADS': '1'},
}


def al_cells(count: int, seed: int):
    """``count`` Al cells of 2 and 4 atoms, strained (±3 %) and rattled (0.05 Å)."""
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    cells = []
    for index in range(count):
        atoms = (
            bulk('Al', 'fcc', a=4.04, cubic=True) if index % 4 == 3 else bulk('Al', 'fcc', a=4.04, orthorhombic=True)
        )
        strain = np.eye(3) + rng.uniform(-0.03, 0.03, (3, 3)) * np.array([[1, 0.3, 0.3], [0.3, 1, 0.3], [0.3, 0.3, 1]])
        atoms.set_cell(atoms.cell[:] @ (strain + strain.T) / 2, scale_atoms=True)
        atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
        cells.append(atoms)
    return cells


def pw_base_builder(pw_code, family, atoms, **overrides):
    """A ``PwBaseWorkChain`` builder for one scf of ``atoms`` with the shared settings."""
    from aiida import orm
    from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain

    structure = orm.StructureData(ase=atoms)
    builder = PwBaseWorkChain.get_builder()
    builder.pw.code = pw_code
    builder.pw.structure = structure
    builder.pw.parameters = orm.Dict(overrides.pop('parameters', PW_PARAMETERS))
    builder.pw.pseudos = family.get_pseudos(structure=structure)
    builder.pw.metadata.options = OPTIONS
    if 'kpoints' in overrides:
        builder.kpoints = overrides.pop('kpoints')
    else:
        builder.kpoints_distance = orm.Float(KPOINTS_DISTANCE)
    return builder


def run_pw_calculation(pw_code, family, atoms, parameters: dict):
    """Run one ``PwCalculation`` (no restarts) on ``atoms`` with the shared k-point distance; return its node."""
    from aiida import orm
    from aiida.engine import run_get_node
    from aiida_quantumespresso.calculations.pw import PwCalculation

    structure = orm.StructureData(ase=atoms)
    kpoints = orm.KpointsData()
    kpoints.set_cell_from_structure(structure)
    kpoints.set_kpoints_mesh_from_density(KPOINTS_DISTANCE)
    _, node = run_get_node(
        PwCalculation,
        code=pw_code,
        structure=structure,
        parameters=orm.Dict(parameters),
        kpoints=kpoints,
        pseudos=family.get_pseudos(structure=structure),
        metadata={'options': OPTIONS},
    )
    return node
