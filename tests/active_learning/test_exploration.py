"""The exploration calculation without running it: inputs, validation, the job's files, and its parser on retrieved
files of real runs of ``explore.py`` (``tests/parsers/fixtures/exploration``)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from aiida import orm

from aiida_mlip_autopipe.active_learning.settings import ExplorationSettings, SelectionSettings
from aiida_mlip_autopipe.calculations.exploration import PacemakerExplorationCalculation
from aiida_mlip_autopipe.parsers.exploration import ExplorationParser
from tests.active_learning.helpers import cu_starts

SHARED_RUN = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'pacemaker-runs' / 'success'


@pytest.fixture
def python_code(session_localhost):
    return orm.InstalledCode(label='python3', computer=session_localhost, filepath_executable='/usr/bin/python3')


@pytest.fixture
def potential_files():
    yaml = orm.SinglefileData(SHARED_RUN / 'output_potential.yaml')
    asi = orm.SinglefileData(SHARED_RUN / 'output_potential.asi')
    return yaml, asi


def inputs(code, potential_files, **extra):
    yaml, asi = potential_files
    return {
        'code': code,
        'potential': yaml,
        'active_set': asi,
        'structures': cu_starts(2),
        'exploration': orm.Dict({'steps': 50, 'temperatures_K': [500.0]}),
        'selection': orm.Dict({'gamma_lo': 2.0, 'gamma_hi': 8.0}),
        **extra,
    }


def test_job_files_and_command(generate_calc_job, python_code, potential_files):
    folder, info = generate_calc_job(PacemakerExplorationCalculation, inputs(python_code, potential_files))
    assert sorted(path.name for path in folder.iterdir()) == [
        'explore.py',
        'pacemaker_io.py',
        'parameters.json',
        'structures.npz',
    ]
    parameters = json.loads((folder / 'parameters.json').read_text())
    assert parameters['exploration']['steps'] == 50 and parameters['exploration']['ensemble'] == 'nvt'
    assert parameters['selection'] == {
        'gamma_lo': 2.0,
        'gamma_hi': 8.0,
        'max_per_iteration': 10,
        'method': 'd_optimal',
        'stopping_frames': True,
        'spread_trajectories': False,
        'gamma_tolerance': 1.01,
        'fill_up': True,
        'fill_order': 'highest_gamma',
        'min_distance_ratio': 0.75,
        'max_energy_above_data': 1.0,
        'max_force_ratio': 10.0,
        'calibration_samples': 2,
        'miss_force_threshold': 0.3,
    }
    assert parameters['min_distances'] == {}
    assert parameters['processes'] == 1  # the default resources: one process
    assert parameters['exploration']['edge_frames'] is True and parameters['exploration']['restarts'] == 9
    with np.load(folder / 'structures.npz') as arrays:
        assert list(arrays['natoms']) == [4, 8] and arrays['cells'].shape == (2, 3, 3)
    assert info.codes_info[0].cmdline_params == ['explore.py', 'parameters.json']
    assert [entry[2] for entry in info.local_copy_list] == ['potential.yaml', 'potential.asi']
    assert 'selected.npz' in info.retrieve_list and 'exploration.json' in info.retrieve_list
    assert 'calibration.npz' in info.retrieve_list


def test_the_job_runs_as_many_worker_processes_as_it_has_mpi_processes(generate_calc_job, python_code, potential_files):
    options = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 3}}
    folder, _ = generate_calc_job(
        PacemakerExplorationCalculation, inputs(python_code, potential_files, metadata={'options': options})
    )
    assert json.loads((folder / 'parameters.json').read_text())['processes'] == 3


@pytest.mark.parametrize(
    ('changes', 'message'),
    [
        ({'selection': {'gamma_lo': 5.0, 'gamma_hi': 2.0}}, 'gamma_hi=2.0 must be greater than gamma_lo'),
        ({'exploration': {'ensemble': 'npt'}}, "ensemble: Input should be 'nvt' or 'nve'"),
        ({'exploration': {'temperatures_K': []}}, 'temperatures_K: List should have at least 1 item'),
        ({'exploration': {'stpes': 10}}, 'stpes: Extra inputs are not permitted'),
    ],
)
def test_invalid_settings_are_refused_with_the_key(python_code, potential_files, changes, message):
    from aiida.engine import run_get_node

    changes = {name: orm.Dict(value) for name, value in changes.items()}
    with pytest.raises(ValueError, match=message.replace('(', r'\(')):
        run_get_node(PacemakerExplorationCalculation, **inputs(python_code, potential_files, **changes))


def test_a_yace_potential_is_refused(python_code, potential_files):
    from aiida.engine import run_get_node

    yace = orm.SinglefileData(SHARED_RUN / 'output_potential.yace')
    with pytest.raises(ValueError, match=r"potential 'output_potential.yace': give the B-basis YAML"):
        run_get_node(PacemakerExplorationCalculation, **inputs(python_code, potential_files, potential=yace))


def test_entry_points_load():
    from aiida.plugins import CalculationFactory, ParserFactory, WorkflowFactory

    from aiida_mlip_autopipe.workflows.active_learning import PacemakerActiveLearningWorkChain

    assert CalculationFactory('mlip_autopipe.exploration') is PacemakerExplorationCalculation
    assert ParserFactory('mlip_autopipe.exploration') is ExplorationParser
    assert WorkflowFactory('mlip_autopipe.active_learning') is PacemakerActiveLearningWorkChain


@pytest.mark.pacemaker
@pytest.mark.parametrize('processes', [1, 2])
def test_the_jobscript_spreads_trajectories_over_processes(pacemaker_executable, tmp_path, processes):
    """explore.py in pacemaker's environment, serial and over two worker processes: every group of trajectories
    runs, indices and calibration frames stay consistent, the summary says how many processes ran."""
    import shutil
    import subprocess

    from aiida_mlip_autopipe.jobscripts import pacemaker_io

    scripts = pathlib.Path(pacemaker_io.__file__).parent
    for name in ('explore.py', 'pacemaker_io.py'):
        shutil.copy(scripts / name, tmp_path / name)
    shutil.copy(SHARED_RUN / 'output_potential.yaml', tmp_path / 'potential.yaml')
    shutil.copy(SHARED_RUN / 'output_potential.asi', tmp_path / 'potential.asi')
    starts = [structure.get_ase() for structure in cu_starts(2).values()]
    np.savez(tmp_path / 'structures.npz', **pacemaker_io.atoms_arrays(starts))
    parameters = {
        'potential': 'potential.yaml',
        'active_set': 'potential.asi',
        'structures': 'structures.npz',
        'exploration': {**ExplorationSettings(steps=30, temperatures_K=[300.0, 900.0], seed=3).model_dump()},
        'selection': SelectionSettings(gamma_lo=1.2, gamma_hi=50.0, max_per_iteration=3).model_dump(),
        'min_distances': {},
        'processes': processes,
    }
    (tmp_path / 'parameters.json').write_text(json.dumps(parameters))
    python = pacemaker_executable.parent / 'python'
    done = subprocess.run(
        [str(python), 'explore.py', 'parameters.json'], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / 'exploration.json').read_text())
    assert summary['processes'] == processes
    records = summary['per_trajectory']
    groups = sorted({(record['start'], record['temperature_K']) for record in records})
    assert groups == [(0, 300.0), (0, 900.0), (1, 300.0), (1, 900.0)]
    assert summary['explored_steps'] == sum(len(record['gamma']) for record in records)
    with np.load(tmp_path / 'selected.npz') as selected:
        assert all(0 <= index < len(records) for index in selected['trajectory'])
        assert len(selected['natoms']) == summary['selected'] <= 3
    with np.load(tmp_path / 'calibration.npz') as calibration:
        for index, step, gamma in zip(
            calibration['trajectory'], calibration['step'], calibration['gamma'], strict=True
        ):
            assert records[index]['gamma'][step] == pytest.approx(gamma)  # the frame of that trajectory and step
            assert gamma < 1.2
