"""A small real active-learning loop (pacemaker, pace_activeset, the exploration job, EMT labels) shared by tests."""

from __future__ import annotations

import pytest

from tests.conftest import TINY_BACKEND

#: a tiny fit: the loop's retrains stay seconds long
LOOP_SETTINGS = {
    'potential': {'functions': {'number_of_functions_per_element': 8}},
    'fit': {'maxiter': 10},
    'backend': {**TINY_BACKEND, 'display_step': 5},
}
EXPLORATION = {'temperatures_K': [800.0, 1600.0], 'steps': 100, 'timestep_fs': 2.0, 'rattle': 0.05, 'strain': 0.03}
SELECTION = {'gamma_lo': 1.2, 'gamma_hi': 20.0, 'max_per_iteration': 6, 'calibration_samples': 2}
#: the basis grows from 4 to 8 functions per element once the fit has 18 structures (after the first labels); every
#: refit is taken (fits of 10 iterations on a 4-structure test set scatter: the check is tested on its own)
REFIT = {'functions_schedule': [[0, 4], [18, 8]], 'max_test_error_ratio': None}
#: labelling calculations at once: the 6 + 2 labels of an iteration run in batches of 3
MAX_CONCURRENT_LABELS = 3
#: each iteration's potential is validated (EOS of fcc Cu against EMT, labelled once); a target no fit meets (a
#: relative error of exactly 0), so the loop runs on and records the properties of every iteration
#: the shared loop explores with two jobs per iteration (the 3 starts dealt out: 2 and 1)
EXPLORATION_JOBS = 2
VALIDATION_PROPERTIES = {'eos': {'points': 5}}
IMPOSSIBLE_TARGETS = {'V0': {'max_relative_error': 0.0}}


def cu_starts(count: int = 3):
    """Starting configurations: Cu fcc cells (4 and 8 atoms)."""
    from aiida import orm
    from ase.build import bulk

    cells = [bulk('Cu', 'fcc', a=3.61, cubic=True), bulk('Cu', 'fcc', a=3.61, orthorhombic=True) * (1, 2, 2)]
    return {f'start_{index}': orm.StructureData(ase=cells[index % len(cells)]) for index in range(count)}


@pytest.fixture(scope='session')
def cu_initial_set(aiida_profile):
    """20 strained, rattled Cu cells labelled with EMT: the first fit's data."""
    from aiida_mlip_autopipe.data.training_set import TrainingSetData
    from aiida_mlip_autopipe.demo.emt import emt_structures

    return TrainingSetData.from_atoms(emt_structures(20, elements=('Cu',), seed=3)).store()


def loop_builder(code, initial_set, **inputs):
    """A builder of the loop with EMT labels on the Cu data (given inputs win)."""
    from aiida import orm

    from aiida_mlip_autopipe.workflows.active_learning import PacemakerActiveLearningWorkChain
    from tests.conftest import FIT_OPTIONS

    builder = PacemakerActiveLearningWorkChain.get_builder()
    builder.training.code = code
    builder.training.training_sets = {'initial': initial_set}
    builder.training.settings = orm.Dict(LOOP_SETTINGS)
    builder.training.options = orm.Dict(FIT_OPTIONS)
    builder.training.min_structures = orm.Int(10)
    builder.training.test_fraction = orm.Float(0.2)
    builder.training.plots = orm.Bool(False)
    builder.structures = cu_starts()
    builder.exploration = orm.Dict(EXPLORATION)
    builder.selection = orm.Dict(SELECTION)
    builder.labeller = orm.Str('ase:emt')
    builder.max_iterations = orm.Int(2)
    builder.refit = orm.Dict(REFIT)
    builder.max_concurrent_labels = orm.Int(MAX_CONCURRENT_LABELS)
    for name, value in inputs.items():
        builder[name] = value
    return builder


@pytest.fixture(scope='session')
def emt_loop(pacemaker_code, cu_initial_set):
    """One real loop run with EMT labels (2 iterations at most), each potential validated (EOS against EMT), each
    iteration exploring with two jobs."""
    from aiida import orm
    from aiida.engine import run_get_node

    builder = loop_builder(pacemaker_code, cu_initial_set, exploration_jobs=orm.Int(EXPLORATION_JOBS))
    builder.validation.structures = fcc_cu()
    builder.validation.properties = orm.Dict(VALIDATION_PROPERTIES)
    builder.convergence = orm.Dict({'property_targets': IMPOSSIBLE_TARGETS})
    _, node = run_get_node(builder)
    return node


def fcc_cu() -> dict:
    """The validation's reference crystal: the primitive fcc Cu cell."""
    from aiida import orm
    from ase.build import bulk

    return {'fcc_cu': orm.StructureData(ase=bulk('Cu', 'fcc', a=3.61))}
