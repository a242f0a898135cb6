"""``mlip-autopipe list / lineage / export / plot``: the trained potentials and where they came from."""

from __future__ import annotations

import json
import pathlib
from typing import TYPE_CHECKING, cast

import click
from aiida.cmdline.params import arguments, types
from aiida.cmdline.utils import decorators, echo

from aiida_mlip_autopipe.cli import cli
from aiida_mlip_autopipe.cli.utils import one_line_errors, ranges

if TYPE_CHECKING:
    from aiida_mlip_autopipe.active_learning.lineage import StructureOrigin

POTENTIAL = arguments.DATUM(
    'POTENTIAL', type=types.DataParamType(sub_classes=('aiida.data:core.singlefile',))
)  # a .yace (or its .yaml) by pk, UUID or label


def _output_directory(path: pathlib.Path, create: bool = True) -> pathlib.Path:
    """Create ``path`` as a directory (with ``create``; else only check it); refuse an existing file in one line."""
    path = path.expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise click.BadParameter(f'{path} exists and is not a directory: give a directory', param_hint='-o/--output')
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


@cli.command('list')
@click.option('-e', '--element', 'elements', multiple=True, help='The potential covers this element (repeat).')
@click.option('--exact', is_flag=True, help='Exactly the given elements, no others.')
@click.option('--max-rmse-forces', type=float, default=None, help='Force RMSE below this (meV/Å).')
@click.option('--max-rmse-energy', type=float, default=None, help='Energy RMSE below this (meV/atom).')
@click.option('--split', type=click.Choice(['test', 'train']), default='test', show_default=True)
@click.option('-l', '--limit', type=click.IntRange(min=1), default=None, help='Show at most this many (newest first).')
@click.option(
    '-t',
    '--target',
    'targets',
    multiple=True,
    type=(str, str, float),
    metavar='QUANTITY KIND LIMIT',
    help='Only potentials whose newest validation meets this target (repeat), e.g. `-t phonon_rmse max 0.2 '
    "-t B0 max_relative_error 0.05`; kinds: max, min (the potential's value), max_abs_error, max_relative_error.",
)
@decorators.with_dbenv()
@one_line_errors
def list_command(elements, exact, max_rmse_forces, max_rmse_energy, split, limit, targets):
    """List trained potentials (newest first): elements, RMSEs, training size, date; with --target, only those whose
    newest validation meets the targets (its pk is shown)."""
    from tabulate import tabulate

    from aiida_mlip_autopipe.potentials.lineage import find_potentials
    from aiida_mlip_autopipe.validation.targets import check_targets

    wanted: dict[str, dict[str, float]] = {}
    for quantity, kind, value in targets:
        wanted.setdefault(quantity, {})[kind] = value
    if wanted:
        check_targets({}, wanted)  # a kind that is not understood: one line, before any query
    found = find_potentials(list(elements) or None, max_rmse_forces, max_rmse_energy, split=split, exact_elements=exact)
    validations = {}
    if wanted:
        from aiida_mlip_autopipe.workflows.validation import latest_validation

        for node in found:
            validation = latest_validation(node)
            if validation is not None and check_targets(validation.outputs.properties.get_dict(), wanted)[0]:
                validations[node.pk] = validation.pk
        found = [node for node in found if node.pk in validations]
    if not found:
        echo.echo_report('no potential matches' + (' (a validation meeting the targets)' if wanted else ''))
        return
    rows = []
    for node in found[:limit]:
        attributes = node.base.attributes
        rows.append(
            [
                node.pk,
                '-'.join(attributes.get('elements', [])),
                attributes.get(f'rmse_energy_{split}', None),
                attributes.get(f'rmse_forces_{split}', None),
                attributes.get('num_functions', None),
                attributes.get(f'num_structures_{split}', None),
                node.ctime.strftime('%Y-%m-%d %H:%M'),
            ]
            + ([validations[node.pk]] if wanted else [])
        )
    headers = ['PK', 'elements', f'E {split} meV/atom', f'F {split} meV/Å', 'functions', f'{split} structures', 'date']
    headers += ['validation'] if wanted else []
    echo.echo(tabulate(rows, headers=headers, floatfmt='.2f'))


def _lineage_lines(lineage) -> list[str]:
    """The lineage in lines that stay readable for 100,000 structures: row ranges per file, train and test apart."""
    test = len(lineage.test_set) if lineage.test_set is not None else 0
    lines = [
        f'potential {lineage.potential.pk} ({lineage.potential.filename}) by '
        f'{lineage.calculation.process_label}<{lineage.calculation.pk}>',
        f'code: {lineage.code.full_label} ({lineage.code.uuid})',
        f'training set: {len(lineage.training_set)} structures; test set: {test}',
    ]
    for entry in lineage.files:
        lines.append(f'file {entry["filename"]} ({entry["format"]}) sha256={entry["sha256"]}')
        lines.append(f'  train: {len(entry["train_rows"])} rows/frames: {ranges(entry["train_rows"])}')
        lines.append(f'  test:  {len(entry["test_rows"])} rows/frames: {ranges(entry["test_rows"])}')
    if lineage.dft_calculations:
        pks = [calculation.pk for calculation in lineage.dft_calculations]
        labels = sorted({calculation.process_label for calculation in lineage.dft_calculations})
        lines.append(f'DFT: {len(pks)} {"/".join(labels)} <{ranges(pks)}>')
    if lineage.initial_potential is not None:
        lines.append(f'continued from: {lineage.initial_potential.filename}<{lineage.initial_potential.pk}>')
    lines.append(f'settings: {json.dumps(lineage.settings)}')
    return lines


@cli.command('lineage')
@POTENTIAL
@decorators.with_dbenv()
@one_line_errors
def lineage_command(potential):
    """Show the data, settings and code behind a POTENTIAL (its .yace or .yaml node)."""
    from aiida_mlip_autopipe.potentials.lineage import potential_lineage

    lineage = potential_lineage(potential)
    for line in _lineage_lines(lineage) + _loop_lines(lineage.training_set):
        echo.echo(line)


def _loop_lines(training_set) -> list[str]:
    """Per iteration of an active-learning loop: the structures it added, who proposed and who labelled them."""
    from aiida_mlip_autopipe.active_learning.lineage import structure_lineage

    origins = structure_lineage(training_set)
    if not any(origin.iteration for origin in origins):
        return []
    lines = ['active learning (training structures per iteration):']
    for iteration in sorted({origin.iteration for origin in origins}):
        chosen = [origin for origin in origins if origin.iteration == iteration]
        if iteration == 0:
            lines.append(f'  iteration 0: {len(chosen)} structures of the first fit')
            continue
        added = [_added(origin) for origin in chosen]
        explorations = sorted({exploration for exploration, _, _, _ in added})
        labellers = sorted({labeller for _, labeller, _, _ in added})
        gammas = [gamma for _, _, _, gamma in added]
        lines.append(
            f'  iteration {iteration}: {len(chosen)} structures proposed by PacemakerExplorationCalculation'
            f'<{ranges(explorations)}> (gamma {min(gammas):.2f}-{max(gammas):.2f}), labelled by '
            f'{"/".join(labellers)} <{ranges(sorted(pk for _, _, pk, _ in added))}>'
        )
    return lines


def _added(origin: StructureOrigin) -> tuple[int, str, int, float]:
    """A structure an iteration added: its exploration's pk, its labeller's process label and pk, its gamma
    (``structure_lineage`` sets all of them where it finds the iteration; the nodes are stored)."""
    exploration, labeller, gamma = origin.exploration, origin.labeller, origin.gamma
    assert exploration is not None and labeller is not None and gamma is not None
    return cast(int, exploration.pk), cast(str, labeller.process_label), cast(int, labeller.pk), gamma


@cli.command('export')
@POTENTIAL
@click.option('-o', '--output', type=click.Path(path_type=pathlib.Path), required=True, help='A directory.')
@click.option('--species', default=None, help='LAMMPS atom types in order, e.g. "Cu Al" (default: its elements).')
@click.option('-f', '--force', is_flag=True, help='Replace files (or links) of the same names in the directory.')
@decorators.with_dbenv()
@one_line_errors
def export_command(potential, output, species, force):
    """Write a POTENTIAL for use elsewhere: .yace, .yaml, .asi (if built), LAMMPS lines, metrics and lineage.

    Existing files are not replaced without --force, nothing is written through a symbolic link, and each file is
    written to a temporary name and renamed into place."""
    from aiida_mlip_autopipe.potentials.calculator import b_basis_of
    from aiida_mlip_autopipe.potentials.export import write_files
    from aiida_mlip_autopipe.potentials.lammps import lammps_commands
    from aiida_mlip_autopipe.potentials.lineage import active_set_of, potential_lineage

    lineage = potential_lineage(potential)
    directory = _output_directory(output, create=False)  # created once everything is checked
    yace = lineage.calculation.outputs.potential
    basis = b_basis_of(yace)
    stem = f'{"".join(yace.base.attributes.get("elements", [])) or "potential"}_{yace.pk}'
    nodes = {f'{stem}.yace': yace, f'{stem}.yaml': basis}
    active_set = active_set_of(basis)
    if active_set is not None:
        nodes[f'{stem}.asi'] = active_set
    files = {name: node.get_content(mode='rb') for name, node in nodes.items()}
    lines = lammps_commands(yace, f'{stem}.yace', species.split() if species else None)
    files['lammps.in'] = ('\n'.join(lines) + '\n').encode()
    summary = {
        'potential': {'pk': yace.pk, 'uuid': yace.uuid, 'file': f'{stem}.yace'},
        'metrics': lineage.calculation.outputs.metrics.get_dict(),
        'lineage': {
            'calculation': lineage.calculation.uuid,
            'code': {'label': lineage.code.full_label, 'uuid': lineage.code.uuid},
            'settings': lineage.settings,
            'training_structures': len(lineage.training_set),
            'test_structures': len(lineage.test_set) if lineage.test_set is not None else 0,
            'files': lineage.files,
            'dft_calculations': [calculation.uuid for calculation in lineage.dft_calculations],
            'initial_potential': lineage.initial_potential.uuid if lineage.initial_potential is not None else None,
        },
    }
    files[f'{stem}.json'] = json.dumps(summary, indent=1, default=str).encode()
    directory.mkdir(parents=True, exist_ok=True)
    for path in write_files(directory, files, overwrite=force):  # all checked before the first is written
        echo.echo(str(path))


@cli.command('plot')
@arguments.NODE()
@click.option('-o', '--output', type=click.Path(path_type=pathlib.Path), default=pathlib.Path('.'), show_default=True)
@decorators.with_dbenv()
@one_line_errors
def plot_command(node, output):
    """Write learning_curve.png and parity.png of a fit (a potential, calculation or workflow NODE)."""
    from aiida_mlip_autopipe.potentials.plots import make_plots

    for path in make_plots(node, _output_directory(output)):
        echo.echo(str(path))
