"""The active learning step: active set (pace_activeset through aiida-shell), gamma, plots, and an upfit whose
lineage shows both the old potential and the new data."""

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mlip_autopipe import get_calculator
from aiida_mlip_autopipe.data.training_set import TrainingSetData
from aiida_mlip_autopipe.demo.emt import emt_structures
from aiida_mlip_autopipe.potentials.lineage import find_potentials, potential_lineage
from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain
from tests.helpers import FIT_OPTIONS, TINY_BACKEND, TINY_SETTINGS, single_point

pytestmark = pytest.mark.pacemaker


@pytest.fixture(scope='module')
def active_fit(train_cu_al):
    return train_cu_al(build_active_set=orm.Bool(True))


def test_active_set_gives_low_gamma_inside_and_high_gamma_outside(active_fit):
    assert active_fit.is_finished_ok, (active_fit.exit_status, active_fit.exit_message)
    active_set = active_fit.outputs.active_set
    assert active_set.filename == 'output_potential.asi'
    shelljob = active_set.creator
    assert shelljob.process_label.startswith('ShellJob<pace_activeset') and shelljob.is_finished_ok
    assert active_fit.outputs.potential_yaml.uuid in [
        link.node.uuid for link in shelljob.base.links.get_incoming().all()
    ]
    calculator = get_calculator(active_fit.outputs.potential, active_set=active_set)
    inside = active_fit.outputs.training_set.get_atoms()[0]
    inside.calc = calculator
    inside.get_potential_energy()
    gamma_inside = np.max(calculator.results['gamma'])
    distorted = inside.copy()
    distorted.set_cell(distorted.cell * 0.8, scale_atoms=True)
    distorted.rattle(0.25, seed=3)
    distorted.calc = calculator
    distorted.get_potential_energy()
    gamma_outside = np.max(calculator.results['gamma'])
    assert gamma_inside <= 1.5 < 5.0 < gamma_outside


def test_plots_are_stored_as_png_nodes(active_fit):
    plots = active_fit.outputs.plots
    assert set(plots) == {'learning_curve', 'parity'}
    for node in plots.values():
        assert node.filename.endswith('.png') and node.get_content(mode='rb')[:8] == b'\x89PNG\r\n\x1a\n'
        assert len(node.get_content(mode='rb')) > 20_000


def test_make_plots_in_one_call(active_fit, tmp_path):
    from aiida_mlip_autopipe.potentials.plots import make_plots

    paths = make_plots(active_fit.outputs.potential, tmp_path)
    assert [path.name for path in paths] == ['learning_curve.png', 'parity.png']
    assert all(path.read_bytes()[:4] == b'\x89PNG' for path in paths)


def test_upfit_lineage_shows_old_potential_and_new_data(active_fit, pacemaker_code):
    new_data = TrainingSetData.from_atoms(emt_structures(12, repeat=2, seed=77)).store()
    old_yaml = active_fit.outputs.potential_yaml
    _, node = run_get_node(
        PacemakerTrainingWorkChain,
        code=pacemaker_code,
        settings=orm.Dict({**TINY_SETTINGS, 'fit': {'maxiter': 3}}),
        options=orm.Dict(FIT_OPTIONS),
        base={'pacemaker': {'initial_potential': old_yaml}},
        training_sets={'old': active_fit.outputs.training_set, 'new': new_data},
        min_structures=orm.Int(10),
        plots=orm.Bool(False),
    )
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    lineage = potential_lineage(node.outputs.potential)
    assert lineage.initial_potential.uuid == old_yaml.uuid
    assert new_data.uuid in [n.uuid for n in lineage.source_nodes]
    assert len(lineage.training_set) + len(lineage.test_set) == len(active_fit.outputs.training_set) + 12
    assert node.outputs.potential.uuid in [p.uuid for p in find_potentials(source=old_yaml)]
    assert node.outputs.potential.uuid in [p.uuid for p in find_potentials(source=new_data)]
    log = node.outputs.potential.creator.outputs.retrieved.base.repository.get_object_content('log.txt')
    assert 'initial_potential.yaml' in log


def outlier_cu_ni_set() -> TrainingSetData:
    """51 Cu and 13 Ni atoms in 16 fcc cells; two Ni atoms carry an 8 eV/Å force that no potential reproduces, so that
    ``pace_activeset``'s default selection (the atoms without outlying force errors) keeps fewer Ni environments."""

    structures = emt_structures(10, elements=('Cu',), seed=1) + emt_structures(6, elements=('Cu', 'Ni'), seed=2)
    for atoms in structures[10:12]:
        forces = atoms.get_forces().copy()
        nickel = atoms.get_chemical_symbols().index('Ni')
        forces[nickel] += [8.0, 0.0, 0.0]
        forces[(nickel + 1) % len(atoms)] -= [8.0, 0.0, 0.0]
        single_point(atoms, atoms.get_potential_energy(), forces)
    return TrainingSetData.from_atoms(structures).store()


def test_active_set_on_all_atoms_when_outliers_leave_too_few(pacemaker_code):
    """13 Ni environments for 12 functions, two of them force outliers: pace_activeset's default selection leaves 11
    or fewer and stops ('Insufficient atomic environments'); the workflow builds the active set on all atoms instead
    of failing the fit (a loop once lost an iteration to this)."""
    _, node = run_get_node(
        PacemakerTrainingWorkChain,
        code=pacemaker_code,
        settings=orm.Dict(
            {
                'potential': {'functions': {'number_of_functions_per_element': 12}},
                'fit': {'maxiter': 5},
                'backend': TINY_BACKEND,
            }
        ),
        options=orm.Dict(FIT_OPTIONS),
        training_sets={'data': outlier_cu_ni_set()},
        test_fraction=orm.Float(0.0),
        min_structures=orm.Int(10),
        build_active_set=orm.Bool(True),
        plots=orm.Bool(False),
    )
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    first, second = sorted(
        (child for child in node.called if child.process_label.startswith('ShellJob')), key=lambda n: n.pk
    )
    assert not first.is_finished_ok and 'Insufficient atomic environments' in first.outputs.stdout.get_content()
    assert second.is_finished_ok and '--all-atoms' in second.inputs.arguments.get_list()
    assert first.inputs.nodes.data.uuid == second.inputs.nodes.data.uuid  # the fitting data extracted once
    assert node.outputs.active_set.creator.uuid == second.uuid
    reports = [log.message for log in orm.Log.collection.get_logs_for(node)]
    assert any('building the active set on all atoms (--all-atoms)' in message for message in reports), reports
