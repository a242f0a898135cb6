"""Real DFT for the tests: Quantum ESPRESSO's pw.x (Debian) through aiida-quantumespresso, on Al cells.

The pseudopotential is made at test time with QE's own ``ld1.x`` (no library can be downloaded here) and installed
as an aiida-pseudo family. Missing pw.x / ld1.x / aiida-quantumespresso fail the tests (``scripts/install_dft.sh``
installs them); they never skip.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.dft.helpers import PW_PARAMETERS, al_cells, pw_base_builder, run_pw_calculation

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


@pytest.fixture(scope='session')
def qe_failed_calculation(pw_code, al_pseudo_family):
    """A real ``PwCalculation`` that fails: one SCF step allowed (electronic convergence not reached)."""
    parameters = {**PW_PARAMETERS, 'ELECTRONS': {'conv_thr': 1e-12, 'electron_maxstep': 1}}
    node = run_pw_calculation(pw_code, al_pseudo_family, al_cells(1, seed=99)[0], parameters)
    assert not node.is_finished_ok
    return node
