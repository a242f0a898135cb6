"""Benchmark (issue #17): the loop on real Quantum ESPRESSO Al, stopped by physics, validated against pw.x.

* DFT: pw.x through aiida-quantumespresso's ``PwBaseWorkChain`` with the test suite's settings (an ld1.x PBE
  norm-conserving pseudopotential made here, 20 Ry, Marzari-Vanderbilt smearing, k-point distance 0.45 1/Å).
* First fit: pw.x on ``--first`` strained, rattled Al cells of 2 and 4 atoms.
* The loop: exploration (MD at 300 and 900 K) from fcc cells of 4, 8 and 16 atoms, pw.x labels, the default basis
  schedule up to ``--functions`` per element, and each iteration's potential validated against pw.x on primitive
  fcc Al at the reference lattice constant: EOS (V0, B0), elastic constants (C11, C12, C44), the unrelaxed vacancy
  (3x3x3 supercell) and phonons (2x2x2 supercell, RMSE over the fcc path). The reference calculations run once
  and are reused by every later validation. ``convergence.property_targets``: phonon RMSE <= 0.2 THz and B0 within
  5 % stop the loop.

Usage::

    python benchmarks/validation_qe_al.py                      # 5 iterations at most
    python benchmarks/validation_qe_al.py --iterations 3 --per-iteration 4

Prints the iteration table (labels, functions, test errors, property errors, stop reason), the final validation
table, the number of pw.x calculations and the wall times; writes ``benchmarks/_work/validation_qe_al.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from _common import REPO, WORK, ensure_profile, pacemaker_code

PROFILE = 'benchmarks_qe'
QUANTITIES = ('V0', 'B0', 'C11', 'C12', 'C44', 'E_vac', 'phonon_rmse', 'max_frequency')
TARGETS = {'phonon_rmse': {'max': 0.2}, 'B0': {'max_relative_error': 0.05}}
A_REFERENCE = 4.107  # Å: V0 = 17.31 Å^3/atom of these pw.x settings (docs/validation.md)


def pw_setup():
    """The pw.x code and the ld1.x Al pseudopotential family of the profile (made once)."""
    import shutil

    from aiida import orm
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    from aiida_mlip_autopipe.codes import installed_code
    from tests.dft.conftest import make_al_pseudo_family

    code = installed_code(
        orm.load_computer('localhost'), shutil.which('pw.x'), 'pw', 'pw.x (benchmark)', 'quantumespresso.pw'
    )
    try:
        family = PseudoPotentialFamily.collection.get(label='ld1-Al-PBE')
    except Exception:
        import pathlib

        family = make_al_pseudo_family(pathlib.Path(tempfile.mkdtemp()))
    return code, family


def first_group(pw_code, family, count: int):
    """A group of ``count`` real pw.x runs on strained, rattled 2- and 4-atom Al cells (made once)."""
    from aiida import orm
    from aiida.engine import run_get_node

    from tests.dft.conftest import al_cells, pw_base_builder

    label = f'benchmark-qe-al-{count}'
    group, created = orm.Group.collection.get_or_create(label=label)
    if created or len(group.nodes) < count:
        for atoms in al_cells(count, seed=5)[len(group.nodes) :]:
            _, node = run_get_node(pw_base_builder(pw_code, family, atoms))
            if not node.is_finished_ok:
                raise SystemExit(f'pw.x failed [{node.exit_status}]: {node.exit_message}')
            group.add_nodes(node)
    return group


def pw_calculations() -> int:
    from aiida import orm

    query = orm.QueryBuilder().append(orm.CalcJobNode, filters={'process_type': {'like': '%quantumespresso.pw'}})
    return query.count()


def main(arguments) -> None:
    ensure_profile(PROFILE)
    from aiida import load_profile, orm
    from aiida.engine import run_get_node
    from ase.build import bulk

    load_profile(PROFILE)
    sys.path.insert(0, str(REPO))
    from active_learning import settings

    from aiida_mlip_autopipe.workflows.active_learning import PacemakerActiveLearningWorkChain
    from tests.dft.conftest import KPOINTS_DISTANCE, OPTIONS, PW_PARAMETERS

    started = time.perf_counter()
    pw_code, family = pw_setup()
    group = first_group(pw_code, family, arguments.first)
    print(f'first data: {len(group.nodes)} pw.x runs ({time.perf_counter() - started:.0f} s)', flush=True)

    builder = PacemakerActiveLearningWorkChain.get_builder()
    builder.training.code = pacemaker_code()
    builder.training.group = orm.Str(group.label)
    builder.training.settings = orm.Dict(settings(arguments.functions, arguments.maxiter))
    builder.training.options = orm.Dict({'resources': {'num_machines': 1}})
    builder.training.min_structures = orm.Int(10)
    builder.training.test_fraction = orm.Float(0.2)
    builder.training.plots = orm.Bool(False)
    cubic = bulk('Al', 'fcc', a=4.04, cubic=True)
    builder.structures = {
        'four': orm.StructureData(ase=cubic),
        'eight': orm.StructureData(ase=cubic * (2, 1, 1)),
        'sixteen': orm.StructureData(ase=cubic * (2, 2, 1)),
    }
    builder.exploration = orm.Dict({'temperatures_K': [300.0, 900.0], 'steps': arguments.steps, 'seed': 1})
    builder.selection = orm.Dict({'max_per_iteration': arguments.per_iteration})
    builder.convergence = orm.Dict({'fraction_above_gamma_lo': 0.0, 'property_targets': TARGETS})
    builder.validation = {
        'structures': {'Al': orm.StructureData(ase=bulk('Al', 'fcc', a=A_REFERENCE))},
        'properties': orm.Dict(
            {
                'eos': {'points': 5, 'volume_range': 0.06},
                'elastic': {},
                'vacancy': {'supercell': [3, 3, 3], 'steps': 0},
                'phonons': {'supercell': [2, 2, 2]},
            }
        ),
    }
    builder.max_iterations = orm.Int(arguments.iterations)
    builder.pw.pw.code = pw_code
    builder.pw.pw.parameters = orm.Dict(PW_PARAMETERS)
    builder.pw.pw.metadata.options = OPTIONS
    builder.pw.kpoints_distance = orm.Float(KPOINTS_DISTANCE)
    builder.pseudo_family = orm.Str(family.label)
    before = pw_calculations()
    loop_started = time.perf_counter()
    _, node = run_get_node(builder)
    loop_wall = time.perf_counter() - loop_started
    if not node.is_finished_ok:
        raise SystemExit(f'loop failed [{node.exit_status}]: {node.exit_message}')

    rows = node.outputs.iterations.get_list()
    print('\n| iteration | training structures added | functions | test F (meV/Å) | ' + ' | '.join(QUANTITIES) + ' |')
    print('|---' * (4 + len(QUANTITIES)) + '|')
    labels = 0
    for row in rows:
        labels += row.get('added') or 0
        properties = (row.get('properties') or {}).get('Al', {})
        cells = []
        for quantity in QUANTITIES:
            values = properties.get(quantity) or {}
            relative = values.get('relative_error')
            cells.append(
                f'{values.get("potential"):.3g} ({relative:+.1%})'
                if values.get('potential') is not None and relative is not None
                else f'{values.get("potential")}'
            )
        test = row.get('rmse_forces_test')
        test_cell = '-' if test is None else f'{test:.1f}'
        print(f'| {row["iteration"]} | {labels} | {row.get("functions")} | {test_cell} | ' + ' | '.join(cells) + ' |')
    last = next(row for row in reversed(rows) if row.get('validation'))
    table = orm.load_node(last['validation']).outputs.properties.get_dict()['Al']
    print('\n| quantity | potential | pw.x | error | relative error | unit |\n|---|---|---|---|---|---|')
    for quantity, values in table.items():
        relative = values.get('relative_error')
        print(
            f'| `{quantity}` | {values.get("potential")} | {values.get("reference")} | {values.get("error")} | '
            f'{"" if relative is None else f"{relative:.1%}"} | {values.get("unit", "")} |'
        )
    print(
        f'\nstop reason: {rows[-1].get("stop_reason")}; labels added by the loop: {labels}; pw.x calculations: '
        f'{pw_calculations() - before} in the loop (labels and the validation references), {len(group.nodes)} '
        f'before it; loop {loop_wall:.0f} s, total {time.perf_counter() - started:.0f} s'
    )
    (WORK / 'validation_qe_al.json').write_text(json.dumps({'rows': rows, 'final': table}, indent=1, default=str))


if __name__ == '__main__':
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--first', type=int, default=16, help='pw.x runs of the first fit')
    parser.add_argument('--iterations', type=int, default=5)
    parser.add_argument('--per-iteration', type=int, default=4, help='selection.max_per_iteration')
    parser.add_argument('--steps', type=int, default=100, help='MD steps per trajectory')
    parser.add_argument('--functions', type=int, default=32, help='target functions per element')
    parser.add_argument('--maxiter', type=int, default=200, help="pacemaker's fit.maxiter")
    main(parser.parse_args())
