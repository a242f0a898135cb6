"""Benchmark: collecting PW results into a TrainingSetData (goal: 1,000 calculations in under 30 s, linear).

Builds N finished ``PwCalculation`` nodes shaped as aiida-quantumespresso 5.1 leaves them (input structure,
parameters and k-points; ``output_parameters`` with ~40 keys; ``output_trajectory`` with energy, forces, stress),
then times ``collect_from_pw`` in a fresh process (cold nodes), with its peak memory, for several N. ``legacy``
also passes every ``output_parameters`` Dict as an input (what the collector did before): aiida-core checks new
input links against the existing ones with ``==``, which compares Dicts by content, so that grows quadratically.

Usage: python benchmarks/collect_pw.py [--legacy] [N ...]    (default 250 500 1000; --legacy also times the old way
up to N = 500)
"""

from __future__ import annotations

import os
import sys
import time

from _common import PLUGIN_PYTHON, REPO, ensure_profile, run_measured


def build(count: int, label: str) -> None:
    import numpy as np
    from aiida import orm
    from aiida.common.links import LinkType
    from aiida.engine import ProcessState
    from ase.build import bulk

    group, _ = orm.Group.collection.get_or_create(label)
    if len(group.nodes) >= count:
        return
    computer = orm.Computer.collection.get_or_create(
        label='bench', hostname='localhost', transport_type='core.local', scheduler_type='core.direct'
    )[1]
    if not computer.is_stored:
        computer.store()
    rng = np.random.default_rng(0)
    nodes = []
    for index in range(count - len(group.nodes)):
        atoms = bulk('Al', 'fcc', a=4.04, cubic=True)
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        node = orm.CalcJobNode(computer=computer, process_type='aiida.calculations:quantumespresso.pw')
        node.set_process_label('PwCalculation')
        node.set_option('resources', {'num_machines': 1})
        kpoints = orm.KpointsData()
        kpoints.set_kpoints_mesh([4, 4, 4])
        parameters = orm.Dict(
            {'SYSTEM': {'ecutwfc': 20.0, 'occupations': 'smearing', 'smearing': 'mv', 'degauss': 0.02}}
        )
        for link, data in (
            ('structure', orm.StructureData(ase=atoms)),
            ('kpoints', kpoints),
            ('parameters', parameters),
        ):
            node.base.links.add_incoming(data.store(), LinkType.INPUT_CALC, link)
        node.store()
        output = orm.Dict(
            {f'key_{k}': float(k) for k in range(40)} | {'energy': -225.0 - index * 1e-3, 'energy_units': 'eV'}
        )
        trajectory = orm.TrajectoryData()
        trajectory.set_trajectory(atoms.get_chemical_symbols(), atoms.positions[None], cells=atoms.cell[:][None])
        trajectory.set_array('energy', np.array([-225.0 - index * 1e-3]))
        trajectory.set_array('forces', rng.normal(0, 0.1, (1, 4, 3)))
        trajectory.set_array('stress', rng.normal(0, 1, (1, 3, 3)))
        for link, data in (('output_parameters', output), ('output_trajectory', trajectory)):
            data.base.links.add_incoming(node, LinkType.CREATE, link)
            data.store()
        node.set_process_state(ProcessState.FINISHED)
        node.set_exit_status(0)
        node.seal()
        nodes.append(node)
    group.add_nodes(nodes)


def collect(label: str, count: int, mode: str) -> None:
    from aiida import orm

    from aiida_mlip_autopipe.collection.pw import collect_from_pw, collect_pw_results

    calculations = sorted(orm.load_group(label).nodes, key=lambda node: node.pk)[:count]
    start = time.perf_counter()
    if mode == 'legacy':
        sources = {}
        for index, calc in enumerate(calculations):
            sources[f's{index}_trajectory'] = calc.outputs.output_trajectory
            sources[f's{index}_parameters'] = calc.outputs.output_parameters
            sources[f's{index}_structure'] = calc.inputs.structure
        result = collect_pw_results(frames=orm.Str('last'), **sources)
    else:
        result = collect_from_pw(calculations)
    print(f'{len(result)} {time.perf_counter() - start:.3f}')


def main(counts: list[int], legacy: bool) -> None:
    profile = ensure_profile()
    from aiida import load_profile

    load_profile(profile)
    label = 'bench-pw'
    build(max(counts), label)
    print(f'{"N":>6} {"mode":>8} {"collect (s)":>12} {"process wall (s)":>17} {"peak RSS (MiB)":>15}')
    for count in counts:
        for mode in ('linear', 'legacy') if legacy else ('linear',):
            if mode == 'legacy' and count > 500:
                continue  # quadratic: minutes
            argv = [str(PLUGIN_PYTHON), __file__, '--child', label, str(count), mode]
            wall, peak, stdout = run_measured(argv, env=dict(os.environ))
            structures, seconds = stdout.split()[-2:]
            assert int(structures) == count
            print(f'{count:>6} {mode:>8} {float(seconds):>12.2f} {wall:>17.2f} {peak:>15.0f}')


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--child':
        from aiida import load_profile

        ensure_profile()
        load_profile('benchmarks')
        collect(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        sys.path.insert(0, str(REPO))
        arguments = [value for value in sys.argv[1:] if value != '--legacy']
        main([int(value) for value in arguments] or [250, 500, 1000], legacy='--legacy' in sys.argv)
