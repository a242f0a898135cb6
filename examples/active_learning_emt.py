"""Active learning for Cu with EMT labels: fit, explore by MD with the extrapolation grade, label, refit.

Run with ``verdi run examples/active_learning_emt.py`` (after ``scripts/setup.sh``). The first fit is on 20
strained, rattled Cu cells labelled with ASE's EMT; each iteration runs MD from four starting cells at 600 K and
1200 K with the current potential and its active set, selects up to 8 extrapolative configurations D-optimally
(pacemaker's ``pace_select`` MaxVol), labels them with EMT and continues the fit on old plus new data. EMT stands in
for DFT here (the labels are marked as not DFT); for Quantum ESPRESSO give the ``pw`` namespace instead of
``labeller`` (see docs/active_learning.md).

``MLIP_AUTOPIPE_CODE`` names the pacemaker code (default ``pacemaker@localhost``); ``AL_MAX_ITERATIONS`` the
number of cycles (default 3).
"""

import os
import pathlib

from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import DataFactory, WorkflowFactory
from ase.build import bulk

from aiida_mlip_autopipe.active_learning.lineage import iteration_counts, structure_lineage
from aiida_mlip_autopipe.demo.emt import emt_structures

ActiveLearning = WorkflowFactory('mlip_autopipe.active_learning')
TrainingSetData = DataFactory('mlip_autopipe.training_set')

code = orm.load_code(os.environ.get('MLIP_AUTOPIPE_CODE', 'pacemaker@localhost'))
initial = TrainingSetData.from_atoms(emt_structures(20, elements=('Cu',), seed=1)).store()
cells = [
    bulk('Cu', 'fcc', a=3.61, cubic=True),
    bulk('Cu', 'fcc', a=3.61, orthorhombic=True) * (1, 2, 2),
    bulk('Cu', 'fcc', a=3.70, cubic=True),
    bulk('Cu', 'hcp', a=2.56),
]

builder = ActiveLearning.get_builder()
builder.training.code = code
builder.training.training_sets = {'initial': initial}
builder.training.settings = orm.Dict(
    {'potential': {'functions': {'number_of_functions_per_element': 12}}, 'fit': {'maxiter': 40}}
)
builder.training.options = orm.Dict({'resources': {'num_machines': 1}})
builder.training.min_structures = orm.Int(10)
builder.training.test_fraction = orm.Float(0.2)
builder.structures = {f'start_{index}': orm.StructureData(ase=atoms) for index, atoms in enumerate(cells)}
builder.exploration = orm.Dict({'temperatures_K': [600.0, 1200.0], 'steps': 150, 'strain': 0.03, 'rattle': 0.05})
builder.selection = orm.Dict({'gamma_lo': 1.5, 'gamma_hi': 20.0, 'max_per_iteration': 8})
builder.convergence = orm.Dict({'fraction_above_gamma_lo': 0.02})
builder.labeller = orm.Str('ase:emt')
builder.max_iterations = orm.Int(int(os.environ.get('AL_MAX_ITERATIONS', '3')))
builder.metadata.label = 'example: active learning Cu (EMT labels)'

results, node = run_get_node(builder)
if not node.is_finished_ok:
    raise SystemExit(f'PacemakerActiveLearningWorkChain<{node.pk}> failed [{node.exit_status}]: {node.exit_message}')

print(f'PacemakerActiveLearningWorkChain<{node.pk}> finished ok')
print('iter  explored  >gamma_lo  max gamma  selected  labelled  failed  F test meV/A  E test meV/atom')
for row in results['iterations'].get_list():
    print(
        f'{row["iteration"]:4d}  {row.get("explored_steps", "-"):>8}  '
        f'{row.get("fraction_above_gamma_lo", float("nan")):9.1%}  {row.get("max_gamma") or float("nan"):9.2f}  '
        f'{row.get("selected", "-"):>8}  {row.get("labelled", "-"):>8}  {row.get("failed", "-"):>6}  '
        f'{row.get("rmse_forces_test") or float("nan"):12.1f}  {row.get("rmse_energy_test") or float("nan"):15.2f}'
    )
counts = iteration_counts(structure_lineage(results['training_set']))
print(f'training structures per iteration that added them: {counts}')
target = pathlib.Path('active_learning_output').resolve()
target.mkdir(exist_ok=True)
(target / 'Cu_active_learning.yace').write_bytes(results['potential'].get_content(mode='rb'))
(target / 'Cu_active_learning.asi').write_bytes(results['active_set'].get_content(mode='rb'))
(target / 'loop.png').write_bytes(results['plots']['loop'].get_content(mode='rb'))
print(f'potential, active set and loop plot written to {target}')
print(f'lineage: mlip-autopipe lineage {results["potential"].pk}')
