"""A small real active-learning loop (pacemaker, pace_activeset, the exploration job, EMT labels) shared by tests."""

from __future__ import annotations

import pytest

from tests.active_learning.helpers import (
    EXPLORATION_JOBS,
    IMPOSSIBLE_TARGETS,
    VALIDATION_PROPERTIES,
    fcc_cu,
    loop_builder,
)


@pytest.fixture(scope='session')
def cu_initial_set(aiida_profile):
    """20 strained, rattled Cu cells labelled with EMT: the first fit's data."""
    from aiida_mlip_autopipe.data.training_set import TrainingSetData
    from aiida_mlip_autopipe.demo.emt import emt_structures

    return TrainingSetData.from_atoms(emt_structures(20, elements=('Cu',), seed=3)).store()


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
