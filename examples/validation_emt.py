"""Validate a small Cu potential against EMT: the run of docs/validation.md.

Run with ``verdi run examples/validation_emt.py`` (after ``scripts/setup.sh``). It fits 48 EMT-labelled Cu cells
(30 functions, 150 iterations; about 6 minutes on two cores), validates the potential on fcc Cu against EMT (EOS,
elastic constants, vacancy, phonons, MD at 300 K and 900 K), prints the table, writes the plots to the current
directory, then validates again reusing the first validation's reference labels (no new EMT label).

``MLIP_AUTOPIPE_CODE`` names the pacemaker code (default ``pacemaker@localhost``).
"""

import os
import pathlib

from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory, DataFactory, WorkflowFactory
from ase.build import bulk

from aiida_mlip_autopipe.cli.validate import table_rows
from aiida_mlip_autopipe.demo.emt import emt_structures

PacemakerCalculation = CalculationFactory('mlip_autopipe.pacemaker')
TrainingSetData = DataFactory('mlip_autopipe.training_set')
Validation = WorkflowFactory('mlip_autopipe.validation')

code = orm.load_code(os.environ.get('MLIP_AUTOPIPE_CODE', 'pacemaker@localhost'))
structures = emt_structures(24, elements=('Cu',), repeat=2, strain=0.04, rattle=0.08, seed=5)
structures += emt_structures(24, elements=('Cu',), repeat=1, strain=0.05, rattle=0.02, seed=6)
settings = {
    'potential': {'functions': {'number_of_functions_per_element': 30}},
    'fit': {'maxiter': 150},
    'backend': {'display_step': 50},
}
_, fit = run_get_node(
    PacemakerCalculation,
    code=code,
    training_set=TrainingSetData.from_atoms(structures).store(),
    settings=orm.Dict(settings),
    metadata={'options': {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 2}}},
)
assert fit.is_finished_ok, fit.exit_message

inputs = {
    'potential': fit.outputs.potential,
    'structures': {'Cu': orm.StructureData(ase=bulk('Cu', 'fcc', a=3.6, cubic=True))},
    'properties': orm.Dict(
        {'eos': {}, 'elastic': {}, 'vacancy': {}, 'phonons': {}, 'md': {'temperatures': [300, 900], 'steps': 500}}
    ),
    'labeller': orm.Str('ase:emt'),
}
_, node = run_get_node(Validation, **inputs)
assert node.is_finished_ok, node.exit_message
for row in table_rows(node.outputs.properties.get_dict()):
    print(*row, sep='\t')
for name, plot in node.outputs.plots.items():
    pathlib.Path(f'{name}.png').write_bytes(plot.get_content(mode='rb'))

_, again = run_get_node(Validation, **inputs, reference=node.outputs.reference_labels)
print(f'second validation {again.pk}: reference labels reused, {again.outputs.reference_labels.pk} unchanged')
