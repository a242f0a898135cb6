"""Benchmark (issue #17): property errors of the loop's potential per iteration against random sampling at the same
label budget, from a results file of ``benchmarks/active_learning.py`` (EMT labels, so EMT is the reference).

For every system and seed of the results file: the potential in effect after each loop iteration, and each random
sampling fit at the loop's budgets, validated on the fcc crystal of the system's first element at EMT's lattice
constant: EOS (B0), elastic constants (C11, C12, C44), the unrelaxed vacancy (2x2x2 conventional cell, 32 sites)
and phonons (2x2x2 supercell of the primitive cell, RMSE over the fcc path in THz), with the same functions the
validation workflow calls (``aiida_mlip_autopipe.validation``), against EMT computed the same way. The random fits
are found in the profile as the training workflows that took the loop's first training set as ``first``.

Usage::

    python benchmarks/validation_per_iteration.py benchmarks/_work/active_learning_cu64_quick.json
    python benchmarks/validation_per_iteration.py RESULTS.json --profile benchmarks_cuag

Prints, per system and iteration, mean ± standard deviation over seeds of |relative error| of B0 and C44 (%),
|error| of E_vac (eV) and the phonon RMSE (THz), for the loop and for random sampling at the same labels.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from _common import ensure_profile

PROPERTIES = {
    'eos': {'points': 7, 'volume_range': 0.06},
    'elastic': {},
    'vacancy': {'supercell': [2, 2, 2], 'steps': 0},
    'phonons': {'supercell': [2, 2, 2]},
}
COLUMNS = (('B0', 'relative'), ('C44', 'relative'), ('E_vac', 'absolute'), ('phonon_rmse', 'value'))


def crystal(element: str):
    """The fcc crystal of ``element`` at EMT's equilibrium lattice constant (primitive cell)."""
    from active_learning import LATTICE
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms = bulk(element, 'fcc', a=LATTICE[element], cubic=True)  # the start of the relaxation
    atoms.calc = EMT()
    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-4)
    return bulk(element, 'fcc', a=float(atoms.cell[0, 0]))


def scores(potential, reference: tuple[dict, dict], atoms) -> dict[str, float]:
    """The columns' errors of one potential node against the EMT reference."""
    from aiida_mlip_autopipe import get_calculator
    from aiida_mlip_autopipe.validation.compare import potential_side, table

    values, arrays = potential_side(atoms, get_calculator(potential), PROPERTIES)
    rows = table(values, reference[0], arrays, reference[1])
    result = {}
    for quantity, kind in COLUMNS:
        row = rows.get(quantity) or {}
        if kind == 'relative':
            value = row.get('relative_error')
            result[quantity] = abs(value) * 100 if value is not None else float('nan')
        elif kind == 'absolute':
            result[quantity] = abs(row['error']) if row.get('error') is not None else float('nan')
        else:
            result[quantity] = row['potential'] if row.get('potential') is not None else float('nan')
    return result


def random_fits(first_training_set) -> dict[int, object]:
    """Random sampling's potentials of one seed by label count (the workflows that took ``first_training_set``)."""
    from aiida import orm

    from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain

    query = orm.QueryBuilder().append(orm.Data, filters={'id': first_training_set.pk}, tag='first')
    query.append(
        PacemakerTrainingWorkChain,
        with_incoming='first',
        edge_filters={'label': 'training_sets__first'},
        filters={'attributes.exit_status': 0},
    )
    fits = {}
    for (node,) in query.iterall():
        sample = node.inputs.training_sets['random']
        fits[len(sample)] = node.outputs.potential
    return fits


def main(arguments) -> None:
    ensure_profile(arguments.profile)
    from aiida import load_profile, orm
    from ase.calculators.emt import EMT

    from aiida_mlip_autopipe.validation.compare import potential_side

    load_profile(arguments.profile)
    results = json.loads(open(arguments.results).read())
    from active_learning import SYSTEMS, in_effect

    results = in_effect(results)
    for system in sorted({result['system'] for result in results}):
        runs = [result for result in results if result['system'] == system]
        atoms = crystal(SYSTEMS[system]['elements'][0])
        reference = potential_side(atoms, EMT(), PROPERTIES)
        print(
            f'\n**{system}**: fcc {atoms.get_chemical_formula()} a = {atoms.cell.cellpar()[0] * 2**0.5:.4f} Å; EMT: '
            f'B0 {reference[0]["B0"]:.1f} GPa, C44 {reference[0]["C44"]:.1f} GPa, E_vac {reference[0]["E_vac"]:.3f} eV'
            f' ({len(runs)} seeds)\n'
        )
        header = ' | '.join(f'loop {q} | random {q}' for q, _ in COLUMNS)
        print(f'| iteration | labels (mean) | {header} |\n|---|---|' + '---|---|' * len(COLUMNS))
        per_iteration: dict[int, dict] = {}
        for run in runs:
            first = orm.load_node(run['rows'][0]['training'])
            randoms = random_fits(first.outputs.training_set)
            current = None
            for row, entry in zip((r for r in run['rows'] if r.get('training') is not None), run['loop'], strict=True):
                if row.get('accepted', True):
                    current = orm.load_node(row['training']).outputs.potential
                slot = per_iteration.setdefault(entry['iteration'], {'labels': [], 'loop': [], 'random': []})
                slot['labels'].append(entry['labels'])
                slot['loop'].append(scores(current, reference, atoms))
                if entry['labels'] in randoms:
                    slot['random'].append(scores(randoms[entry['labels']], reference, atoms))

        def fmt(values: list[dict], quantity: str) -> str:
            numbers = [value[quantity] for value in values if np.isfinite(value[quantity])]
            if not numbers:
                return '-'
            return f'{np.mean(numbers):.2f} ± {np.std(numbers):.2f}' + (
                f' ({len(numbers)}/{len(values)})' if len(numbers) < len(values) else ''
            )

        for iteration, slot in sorted(per_iteration.items()):
            cells = ' | '.join(f'{fmt(slot["loop"], q)} | {fmt(slot["random"], q)}' for q, _ in COLUMNS)
            print(f'| {iteration} | {np.mean(slot["labels"]):.1f} | {cells} |')
    print(
        '\nB0, C44: |relative error| (%); E_vac: |error| (eV); phonon_rmse: THz; mean ± standard deviation over seeds '
        '(n/m: values only for n of m seeds, e.g. an EOS without a minimum)'
    )


if __name__ == '__main__':
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('results', help='a results file of benchmarks/active_learning.py')
    parser.add_argument('--profile', default='benchmarks', help='the profile the results were made in')
    main(parser.parse_args())
