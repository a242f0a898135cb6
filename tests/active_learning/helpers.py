"""The settings and builder of the small real loop (EMT labels) that the loop's tests share."""

from __future__ import annotations

from tests.helpers import FIT_OPTIONS, TINY_BACKEND

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

#: the shared loop explores with two jobs per iteration (the 3 starts dealt out: 2 and 1)
EXPLORATION_JOBS = 2

#: each iteration's potential is validated (EOS of fcc Cu against EMT, labelled once); a target no fit meets (a
#: relative error of exactly 0), so the loop runs on and records the properties of every iteration
VALIDATION_PROPERTIES = {'eos': {'points': 5}}
IMPOSSIBLE_TARGETS = {'V0': {'max_relative_error': 0.0}}


def cu_starts(count: int = 3):
    """Starting configurations: Cu fcc cells (4 and 8 atoms)."""
    from aiida import orm
    from ase.build import bulk

    cells = [bulk('Cu', 'fcc', a=3.61, cubic=True), bulk('Cu', 'fcc', a=3.61, orthorhombic=True) * (1, 2, 2)]
    return {f'start_{index}': orm.StructureData(ase=cells[index % len(cells)]) for index in range(count)}


def loop_builder(code, initial_set, **inputs):
    """A builder of the loop with EMT labels on the Cu data (given inputs win)."""
    from aiida import orm

    from aiida_mlip_autopipe.workflows.active_learning import PacemakerActiveLearningWorkChain

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


def fcc_cu() -> dict:
    """The validation's reference crystal: the primitive fcc Cu cell."""
    from aiida import orm
    from ase.build import bulk

    return {'fcc_cu': orm.StructureData(ase=bulk('Cu', 'fcc', a=3.61))}
