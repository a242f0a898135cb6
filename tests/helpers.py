"""Plain helpers and constants shared by the test modules (the fixtures live in the conftest files)."""

from __future__ import annotations

import os
import pathlib
import tempfile
import time

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent

FIXTURES = pathlib.Path(__file__).resolve().parent / 'parsers' / 'fixtures'


def one_line(result) -> bool:
    """A failed command (click's ``CliRunner`` result) printed exactly one line and no traceback."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    return result.exit_code != 0 and len(lines) == 1 and 'Traceback' not in result.output


def node_count() -> int:
    """The number of nodes in the profile (unchanged by a step that must store nothing)."""
    from aiida import orm

    return orm.QueryBuilder().append(orm.Node).count()


#: Seconds the tests wait for the daemon's circus controller (aiida's default, ``daemon.timeout``, is a few seconds:
#: stopping a daemon whose worker is busy took longer on a loaded 2-core machine and failed with 'Timed out').
DAEMON_CALL_TIMEOUT = 120

#: Threads of one fit: the machine's cores shared among pytest-xdist's workers (``-n 2`` on 2 cores: a thread each).
FIT_THREADS = max(1, (os.cpu_count() or 1) // int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1')))

#: Options for real fits (pacemaker's threads follow the resources).
FIT_OPTIONS = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': FIT_THREADS}}

#: A tiny fit's backend: pacemaker's own ``pyace`` evaluator (C++, no TensorFlow to start and trace). For a few
#: functions and iterations it is several times faster than ``tensorpot`` with the same losses (measured: 5 functions,
#: 5 iterations on 16 x 32 atoms, 6.5 s against 32.6 s; 8 functions, 10 iterations, 12 s against 29 s); the tests of
#: the defaults, the fidelity examples and the larger fits keep ``tensorpot``.
TINY_BACKEND = {'evaluator': 'pyace', 'display_step': 2}

#: A tiny fit: a few functions, a few iterations.
TINY_SETTINGS = {
    'potential': {'functions': {'number_of_functions_per_element': 5}},
    'fit': {'maxiter': 5},
    'backend': TINY_BACKEND,
}


def fit_cu_al(code, sets, settings: dict = TINY_SETTINGS, options: dict | None = FIT_OPTIONS, **extra):
    """Run a real ``PacemakerCalculation`` on the Cu-Al training and test sets; ``options=None``: the defaults."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation

    training, test = sets
    metadata = {'options': options} if options is not None else {}
    inputs = {'training_set': training, 'test_set': test, 'settings': orm.Dict(settings), 'metadata': metadata}
    return run_get_node(PacemakerCalculation, code=code, **inputs, **extra)[1]


def calculator_errors(calculator, structures) -> dict[str, np.ndarray]:
    """A calculator's errors against labelled structures (their calculators hold the labels): ``energy`` per atom
    (eV/atom, one per structure) and ``forces`` (eV/Å, all atoms' rows stacked)."""
    energy, forces = [], []
    for atoms in structures:
        label_energy, label_forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = calculator
        energy.append((atoms.get_potential_energy() - label_energy) / len(atoms))
        forces.append(atoms.get_forces() - label_forces)
    return {'energy': np.asarray(energy), 'forces': np.concatenate(forces)}


def calculations(node) -> list:
    """The calculation jobs below a workflow, oldest first."""
    from aiida import orm

    return sorted((c for c in node.called_descendants if isinstance(c, orm.CalcJobNode)), key=lambda c: c.pk)


def wait_until_with_scheduler(node, timeout: float = 120) -> None:
    """Return once the first calculation below ``node`` is with the scheduler (its job submitted and that state
    stored), and a moment more for the worker's checkpoint: a daemon stopped then meets a running job, not a
    submission half-recorded (a stop within that transition once left a process that no worker took up again)."""
    from aiida.common.datastructures import CalcJobState

    submitted = (CalcJobState.WITHSCHEDULER, CalcJobState.RETRIEVING, CalcJobState.PARSING)
    deadline, state = time.time() + timeout, None
    while time.time() < deadline and not node.is_terminated:
        runs = calculations(node)
        state = runs[0].get_state() if runs else None
        if state in submitted:
            time.sleep(2)
            return
        time.sleep(0.5)
    pytest.fail(f'the calculation was not with the scheduler within {timeout} s: {state}, {node.process_state}')


def emt_labelled(scale: float, seed: int):
    """A rattled, scaled fcc Cu cell labelled with EMT: ``(atoms, energy, forces, stress)`` (ASE's units)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    atoms = bulk('Cu', 'fcc', a=3.61 * scale, cubic=True)
    atoms.rattle(0.05, seed=seed)
    atoms.calc = EMT()
    return atoms, atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)


def make_pw_calculation(computer, atoms, energy, forces, stress_ase, finished=True, caller=None):
    """A finished ``PwCalculation`` node as aiida-quantumespresso leaves it (built by hand, as its tests do).

    QE reports stress in GPa with the opposite sign of ASE's (positive under compression).
    """
    from aiida import orm
    from aiida.common.links import LinkType
    from aiida.engine import ProcessState
    from ase.units import GPa

    node = orm.CalcJobNode(computer=computer, process_type='aiida.calculations:quantumespresso.pw')
    node.set_process_label('PwCalculation')
    node.set_option('resources', {'num_machines': 1})
    structure = orm.StructureData(ase=atoms).store()
    node.base.links.add_incoming(structure, LinkType.INPUT_CALC, 'structure')
    if caller is not None:
        node.base.links.add_incoming(caller, LinkType.CALL_CALC, 'pw')
    node.store()
    parameters = orm.Dict({'energy': energy, 'energy_units': 'eV', 'wall_time_seconds': 1.0})
    trajectory = orm.TrajectoryData()
    trajectory.set_trajectory(
        atoms.get_chemical_symbols(),
        atoms.positions[None],
        cells=atoms.cell[:][None],
        pbc=tuple(bool(p) for p in atoms.pbc),
    )
    trajectory.set_array('forces', forces[None])
    trajectory.set_array('stress', (-stress_ase / GPa)[None])
    for label, output in (('output_parameters', parameters), ('output_trajectory', trajectory)):
        output.base.links.add_incoming(node, LinkType.CREATE, label)
        output.store()
    node.set_process_state(ProcessState.FINISHED)
    node.set_exit_status(0 if finished else 305)
    node.seal()
    return node


def basis_coefficients(text: str) -> tuple[int, np.ndarray]:
    """The number of functions and all coefficients of a B-basis potential (pacemaker's YAML), read by pyace."""
    from pyace import BBasisConfiguration

    with tempfile.NamedTemporaryFile('w', suffix='.yaml') as handle:
        handle.write(text)
        handle.flush()
        basis = BBasisConfiguration(handle.name)
        return basis.total_number_of_functions, np.asarray(basis.get_all_coeffs())


def ase_database(path: pathlib.Path, structures, columns=None) -> pathlib.Path:
    """Write labelled ``structures`` to an ASE database at ``path``; ``columns(index)``: each row's key-value pairs."""
    from ase.db import connect

    with connect(path) as db:
        for index, atoms in enumerate(structures):
            db.write(atoms, **(columns(index) if columns else {}))
    return path


def single_point(atoms, energy: float = -1.0, forces=None, stress=None):
    """``atoms`` labelled by a single-point calculator (zero forces unless given)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    forces = np.zeros((len(atoms), 3)) if forces is None else forces
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces, stress=stress)
    return atoms
