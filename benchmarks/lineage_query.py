"""Benchmark: the lineage query of a potential trained on 10,000 structures (goal: under 1 s).

Builds the graph once (an ASE database of 10,000 small EMT structures, imported; a real ``maxiter: 1`` fit through
``PacemakerTrainingWorkChain``), then times ``potential_lineage`` (file hash and row ids, DFT sources, settings,
code) and ``find_potentials`` (by elements and force RMSE; by source file) on a fresh process' cold node.

Usage: python benchmarks/lineage_query.py [N]    (default N = 10000)
"""

from __future__ import annotations

import statistics
import sys
import time

from _common import REPO, WORK, ensure_profile


def build_graph(count: int):
    from aiida import orm
    from aiida.engine import run_get_node
    from ase.db import connect

    from aiida_mlip_autopipe.demo.emt import emt_structures
    from aiida_mlip_autopipe.importers.ase_db import import_ase_db
    from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain

    database = WORK / f'lineage_{count}.db'
    if not database.exists():
        with connect(database) as db:
            for atoms in emt_structures(count, repeat=1, seed=1):
                db.write(atoms)
    training_set = import_ase_db(database)
    existing = orm.QueryBuilder().append(orm.Node, filters={'uuid': training_set.uuid}, tag='set')
    existing.append(orm.WorkChainNode, with_incoming='set', filters={'attributes.exit_status': 0}, project='*')
    node = existing.first(flat=True)
    if node is None:
        code = orm.InstalledCode(
            label='pacemaker',
            computer=orm.load_computer('localhost'),
            filepath_executable=str(REPO / '.venv-pacemaker' / 'bin' / 'pacemaker'),
        ).store()
        settings = {
            'potential': {'functions': {'number_of_functions_per_element': 3}},
            'fit': {'maxiter': 1},
            'backend': {'batch_size': 2000},
        }
        start = time.perf_counter()
        _, node = run_get_node(
            PacemakerTrainingWorkChain,
            code=code,
            training_sets={'db': training_set},
            settings=orm.Dict(settings),
        )
        print(f'built the graph: fit on {count} structures in {time.perf_counter() - start:.1f} s')
    assert node.is_finished_ok, node.exit_message
    return node.outputs.potential.pk


def time_queries(potential_pk: int, repeats: int = 5) -> None:
    from aiida import orm

    from aiida_mlip_autopipe.potentials.lineage import find_potentials, potential_lineage

    timings = {'potential_lineage': [], 'find_potentials(elements, rmse)': [], 'find_potentials(source file)': []}
    for _ in range(repeats):
        potential = orm.load_node(potential_pk)
        start = time.perf_counter()
        lineage = potential_lineage(potential)
        timings['potential_lineage'].append(time.perf_counter() - start)
        start = time.perf_counter()
        found = find_potentials(elements=['Cu', 'Al'], max_rmse_forces=1e9)
        timings['find_potentials(elements, rmse)'].append(time.perf_counter() - start)
        source = orm.load_node(lineage.files[0]['uuid'])
        start = time.perf_counter()
        by_source = find_potentials(source=source)
        timings['find_potentials(source file)'].append(time.perf_counter() - start)
    rows = sum(len(entry['rows']) for entry in lineage.files)
    print(
        f'potential<{potential_pk}>: {len(lineage.training_set)} training + {len(lineage.test_set)} test structures, '
        f'{rows} database rows from {len(lineage.files)} file(s); found {len(found)} / {len(by_source)} potentials'
    )
    for name, values in timings.items():
        print(
            f'{name}: median {statistics.median(values):.3f} s, max {max(values):.3f} s over {repeats} runs '
            f'(goal < 1 s)'
        )


def main(count: int) -> None:
    profile = ensure_profile()
    from aiida import load_profile

    load_profile(profile)
    time_queries(build_graph(count))


if __name__ == '__main__':
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
