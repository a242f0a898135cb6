"""Real DFT for the tests: Quantum ESPRESSO's pw.x (Debian) through aiida-quantumespresso, on Al cells.

The pseudopotential is made at test time with QE's own ``ld1.x`` (no library can be downloaded here) and installed
as an aiida-pseudo family. Missing pw.x / ld1.x / aiida-quantumespresso fail the tests (``scripts/install_dft.sh``
installs them); they never skip.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

LD1_INPUT = """ &input
    title='Al', zed=13., rel=0, config='[Ne] 3s2 3p1', iswitch=3, dft='PBE'
 /
 &inputp
    pseudotype=1, file_pseudopw='Al.pbe-tm.UPF', author='aiida-mlip-autopipe tests', lloc=-1, rcloc=2.0, tm=.true.
 /
2
3S  1  0  2.00  0.00  2.00  2.00  0.0
3P  2  1  1.00  0.00  2.20  2.20  0.0
"""

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


def require(executable: str) -> str:
    path = shutil.which(executable)
    if path is None:
        pytest.fail(
            f'{executable} not found: run scripts/install_dft.sh (Debian quantum-espresso); DFT tests do not skip'
        )
    return path


@pytest.fixture(scope='session')
def pw_code(session_localhost):
    from aiida import orm

    try:
        import aiida_quantumespresso  # noqa: F401
    except ImportError:
        pytest.fail('aiida-quantumespresso is not installed: pip install -e ".[dft]"')
    return orm.InstalledCode(
        label='pw',
        computer=session_localhost,
        filepath_executable=require('pw.x'),
        default_calc_job_plugin='quantumespresso.pw',
    ).store()


def make_al_pseudo_family(folder, label: str = 'ld1-Al-PBE'):
    """Make a PBE norm-conserving Al pseudopotential with ld1.x in ``folder``; install it as an aiida-pseudo family."""
    from aiida_pseudo.data.pseudo import UpfData
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    subprocess.run([require('ld1.x')], input=LD1_INPUT, text=True, cwd=folder, check=True, capture_output=True)
    pseudos = folder / 'pseudos'
    pseudos.mkdir()
    shutil.move(folder / 'Al.pbe-tm.UPF', pseudos / 'Al.pbe-tm.UPF')
    return PseudoPotentialFamily.create_from_folder(pseudos, label, pseudo_type=UpfData)


@pytest.fixture(scope='session')
def al_pseudo_family(aiida_profile, tmp_path_factory):
    """A PBE norm-conserving Al pseudopotential made by ld1.x, as an aiida-pseudo family."""
    return make_al_pseudo_family(tmp_path_factory.mktemp('ld1'))


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


@pytest.fixture(scope='session')
def qe_al_group(pw_code, al_pseudo_family):
    """A group of real ``PwBaseWorkChain`` runs (pw.x scf with forces and stress) on 28 Al cells."""
    from aiida import orm
    from aiida.engine import run_get_node

    group = orm.Group(label='qe-al-scf').store()
    for atoms in al_cells(28, seed=5):
        _, node = run_get_node(pw_base_builder(pw_code, al_pseudo_family, atoms))
        assert node.is_finished_ok, (node.exit_status, node.exit_message)
        group.add_nodes(node)
    return group


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


@pytest.fixture(scope='session')
def qe_failed_calculation(pw_code, al_pseudo_family):
    """A real ``PwCalculation`` that fails: one SCF step allowed (electronic convergence not reached)."""
    parameters = {**PW_PARAMETERS, 'ELECTRONS': {'conv_thr': 1e-12, 'electron_maxstep': 1}}
    node = run_pw_calculation(pw_code, al_pseudo_family, al_cells(1, seed=99)[0], parameters)
    assert not node.is_finished_ok
    return node
