"""Quick start: train an ACE potential for Cu-Al on EMT data with the real pacemaker, through AiiDA.

Run with ``verdi run examples/train_emt.py`` (after ``scripts/setup.sh``). It builds 60 labelled fcc Cu-Al
structures (32 atoms each) with ASE's EMT calculator, stores them as one ``TrainingSetData`` node (plus a
held-out test set of 10), fits a small ACE potential and exports the ``.yace`` file.
"""

import pathlib

from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory, DataFactory

from aiida_mlip_autopipe.demo.emt import emt_structures

PacemakerCalculation = CalculationFactory('mlip_autopipe.pacemaker')
TrainingSetData = DataFactory('mlip_autopipe.training_set')

training_set = TrainingSetData.from_atoms(emt_structures(60, elements=('Cu', 'Al'), repeat=2, seed=1)).store()
test_set = TrainingSetData.from_atoms(emt_structures(10, elements=('Cu', 'Al'), repeat=2, seed=2)).store()
# Nested as pacemaker's input.yaml; absent keys keep pacemaker's defaults (e.g. kappa 0: energies only), and the
# plugin fills only what pacemaker requires (elements, the embeddings and functions blocks) and says so.
settings = {
    'potential': {
        'bonds': {'ALL': {'radbase': 'SBessel', 'radparameters': [5.25], 'rcut': 5.0, 'dcut': 0.01}},
        'functions': {'number_of_functions_per_element': 20},
    },
    'fit': {'maxiter': 50, 'loss': {'kappa': 0.3, 'L1_coeffs': 1e-8, 'L2_coeffs': 1e-8}},
    'backend': {'batch_size': 50, 'display_step': 10},
}
results, node = run_get_node(
    PacemakerCalculation,
    code=orm.load_code('pacemaker@localhost'),
    training_set=training_set,
    test_set=test_set,
    settings=orm.Dict(settings),
    metadata={
        'label': 'quick start: Cu-Al EMT',
        # threads: the computer's default MPI processes per machine (scripts/setup.sh sets all cores of localhost)
        'options': {'resources': {'num_machines': 1}},
    },
)
if not node.is_finished_ok:
    raise SystemExit(f'PacemakerCalculation<{node.pk}> failed [{node.exit_status}]: {node.exit_message}')

potential = results['potential']
metrics = results['metrics'].get_dict()
target = pathlib.Path('quickstart_output').resolve()
target.mkdir(exist_ok=True)
path = target / 'CuAl_emt.yace'
path.write_bytes(potential.get_content(mode='rb'))

print(f'PacemakerCalculation<{node.pk}> finished ok; training set TrainingSetData<{training_set.pk}>')
elements = potential.base.attributes.get('elements')
print(f'potential: SinglefileData<{potential.pk}> ({potential.filename}), elements {elements}')
print(
    f'RMSE train: {metrics["rmse_energy_train"]:.2f} meV/atom, {metrics["rmse_forces_train"]:.1f} meV/Å; '
    f'test: {metrics["rmse_energy_test"]:.2f} meV/atom, {metrics["rmse_forces_test"]:.1f} meV/Å '
    f'({metrics["iterations"]} iterations, {metrics["num_functions"]} functions, fit {metrics.get("fit_time")} s)'
)
print(f'filled by the plugin (pacemaker requires them): {", ".join(metrics.get("settings_filled", {}))}')
print(f'.yace file: {path}')
