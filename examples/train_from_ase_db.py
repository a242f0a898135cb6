"""Train from an ASE database through the training workflow, then ask the graph where the potential came from.

Run with ``verdi run examples/train_from_ase_db.py [path/to/dft.db]`` (after ``scripts/setup.sh``). Without an
argument it writes ``quickstart_output/cu_al_emt.db`` with 60 EMT-labelled Cu-Al cells first.
"""

import pathlib
import sys

from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import WorkflowFactory

from aiida_mlip_autopipe.demo.emt import emt_structures
from aiida_mlip_autopipe.importers.ase_db import import_ase_db
from aiida_mlip_autopipe.potentials.lineage import find_potentials, potential_lineage

TrainingWorkChain = WorkflowFactory('mlip_autopipe.training')

if len(sys.argv) > 1:
    database = pathlib.Path(sys.argv[1])
else:
    from ase.db import connect

    database = pathlib.Path('quickstart_output/cu_al_emt.db').resolve()
    database.parent.mkdir(exist_ok=True)
    if not database.exists():
        with connect(database) as db:
            for atoms in emt_structures(60, repeat=2, seed=3):
                db.write(atoms, config_type='bulk')

training_data = import_ase_db(database, selection='config_type=bulk')
builder = TrainingWorkChain.get_builder()
builder.training_sets = {'database': training_data}
builder.build_active_set = orm.Bool(True)
builder.code = orm.load_code('pacemaker@localhost')
builder.settings = orm.Dict(
    {'potential': {'functions': {'number_of_functions_per_element': 10}}, 'fit': {'maxiter': 30}}
)
builder.base.max_iterations = orm.Int(3)  # the base workflow's own inputs (restarts, handlers) sit under `base`
results, node = run_get_node(builder)
if not node.is_finished_ok:
    raise SystemExit(f'PacemakerTrainingWorkChain<{node.pk}> failed [{node.exit_status}]: {node.exit_message}')

metrics = results['metrics'].get_dict()
print(
    f'PacemakerTrainingWorkChain<{node.pk}>: potential {results["potential"].pk}, active set {results["active_set"].pk}'
)
print(f'test RMSE {metrics["rmse_energy_test"]:.2f} meV/atom, {metrics["rmse_forces_test"]:.1f} meV/Å')
lineage = potential_lineage(results['potential'])
for entry in lineage.files:
    print(f'trained on {entry["filename"]} (sha256 {entry["sha256"][:16]}...), rows {entry["rows"][:10]}...')
print(f'settings {lineage.settings}; code {lineage.code.full_label}')
print(
    'potentials for Cu with a test force RMSE under 100 meV/Å:',
    [p.pk for p in find_potentials(elements=['Cu'], max_rmse_forces=100)],
)
print('plots:', {name: plot.pk for name, plot in results['plots'].items()})
