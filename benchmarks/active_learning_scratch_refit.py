"""Diagnostic of the active-learning benchmark: are the loop's labels or its continued fits what decides an
iteration's error? Refits each finished loop's training set of one iteration from scratch with random sampling's fit
policy (the iteration's functions per element, ``--maxiter`` iterations) and prints its hot-MD force and energy RMSE
beside the loop's own fit of that iteration.

Usage (after ``benchmarks/active_learning.py ... --profile NAME``, on the loops that profile holds)::

    python benchmarks/active_learning_scratch_refit.py --profile NAME --system cu64 --iteration 2
"""

from __future__ import annotations

import argparse
import sys

from _common import REPO, ensure_profile, pacemaker_code


def main(arguments) -> None:
    ensure_profile(arguments.profile)
    from aiida import load_profile, orm

    load_profile(arguments.profile)
    sys.path.insert(0, str(REPO))
    import active_learning as benchmark
    from aiida.engine import run_get_node
    from aiida.orm import QueryBuilder, WorkflowNode

    from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain

    elements = set(benchmark.SYSTEMS[arguments.system]['elements'])
    code = pacemaker_code()
    query = QueryBuilder().append(
        WorkflowNode, filters={'attributes.process_label': 'PacemakerActiveLearningWorkChain'}, project='*'
    )
    for loop in sorted(query.all(flat=True), key=lambda node: node.pk):
        starts = loop.inputs.structures
        symbols = {symbol for key in starts for symbol in starts[key].get_ase().get_chemical_symbols()}
        target = loop.inputs.training.settings['potential']['functions']['number_of_functions_per_element']
        if (
            not loop.is_finished_ok
            or not symbols <= elements
            or target != benchmark.SYSTEMS[arguments.system]['functions']
        ):
            continue  # another system's loop (cu and cu64 differ by their target functions only)
        seed = loop.inputs.exploration['seed']
        row = next(row for row in loop.outputs.iterations.get_list() if row['iteration'] == arguments.iteration)
        fit = orm.load_node(row['training'])
        _, hot, _ = benchmark.seed_sets(tuple(benchmark.SYSTEMS[arguments.system]['elements']), seed, arguments.steps)
        own = benchmark.errors(fit.outputs.potential, hot)
        _, node = run_get_node(
            PacemakerTrainingWorkChain,
            code=code,
            training_sets={'loop': fit.outputs.training_set},
            test_set=fit.outputs.test_set,
            settings=orm.Dict(benchmark.settings(row['functions'], arguments.maxiter)),
            options=orm.Dict({'resources': {'num_machines': 1}}),
            min_structures=orm.Int(10),
            plots=orm.Bool(False),
        )
        scratch = benchmark.errors(node.outputs.potential, hot)
        print(
            f'seed {seed}, iteration {arguments.iteration}: {len(fit.outputs.training_set)} structures, '
            f"{row['functions']} functions: the loop's fit F {own[1]:.1f} meV/Å, E {own[0]:.2f} meV/atom; "
            f'from scratch F {scratch[1]:.1f}, E {scratch[0]:.2f}',
            flush=True,
        )


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--profile', required=True)
    parser.add_argument('--system', required=True, choices=('cu', 'cu64', 'cualni', 'cuag'))
    parser.add_argument('--iteration', type=int, default=2)
    parser.add_argument('--maxiter', type=int, default=150, help="pacemaker's fit.maxiter (--quick: 150)")
    parser.add_argument('--steps', type=int, default=60, help="the loop's MD steps (--quick: 60)")
    main(parser.parse_args())
