"""``mlip-autopipe``: import datasets and query the lineage of potentials from the command line."""

from __future__ import annotations

import json
import pathlib

import click


@click.group()
@click.option('-p', '--profile', default=None, help='AiiDA profile (default: the default profile).')
@click.pass_context
def cli(context: click.Context, profile: str | None) -> None:
    """Train ACE potentials with pacemaker through AiiDA, and ask where they came from."""
    context.ensure_object(dict)
    context.obj['profile'] = profile


def _load(context: click.Context) -> None:
    from aiida import get_profile, load_profile

    if get_profile() is None:
        try:
            load_profile(context.obj.get('profile'))
        except Exception as exception:
            raise click.ClickException(
                f'cannot load an AiiDA profile ({exception}); set AIIDA_PATH or run scripts/setup.sh'
            ) from exception


@cli.command('import')
@click.argument('path', type=click.Path(path_type=pathlib.Path))
@click.option('--selection', default=None, help="ASE db query string, e.g. 'config_type=bulk,energy<0'.")
@click.option('--on-missing-forces', type=click.Choice(['refuse', 'skip', 'keep']), default='refuse')
@click.option('--on-invalid', type=click.Choice(['refuse', 'skip']), default='refuse')
@click.pass_context
def import_command(context, path, selection, on_missing_forces, on_invalid):
    """Import an ASE database (.db, .json) or an extxyz file as a TrainingSetData."""
    _load(context)
    from aiida_mlip_autopipe.importers.ase_db import import_ase_db
    from aiida_mlip_autopipe.importers.extxyz import import_extxyz
    from aiida_mlip_autopipe.importers.source_file import DatasetImportError

    try:
        if path.suffix.lower() in ('.xyz', '.extxyz'):
            if selection:
                raise click.UsageError('--selection applies to ASE databases only')
            node = import_extxyz(path, on_missing_forces=on_missing_forces, on_invalid=on_invalid)
        else:
            node = import_ase_db(path, selection, on_missing_forces=on_missing_forces, on_invalid=on_invalid)
    except DatasetImportError as exception:
        raise click.ClickException(str(exception)) from exception
    info = node.base.attributes.get('import_info')
    click.echo(f'TrainingSetData<{node.pk}> {node.uuid}: {len(node)} structures, elements {node.elements}')
    click.echo(json.dumps(info, indent=1))


@cli.command('lineage')
@click.argument('potential')
@click.pass_context
def lineage_command(context, potential):
    """Show the data, settings and code behind a potential (pk or UUID of its .yace or .yaml node)."""
    _load(context)
    from aiida import orm

    from aiida_mlip_autopipe.lineage import potential_lineage

    try:
        lineage = potential_lineage(orm.load_node(potential))
    except (ValueError, Exception) as exception:
        raise click.ClickException(str(exception)) from exception
    click.echo(
        f'potential {lineage.potential.pk} ({lineage.potential.filename}) by '
        f'{lineage.calculation.process_label}<{lineage.calculation.pk}>'
    )
    click.echo(f'code: {lineage.code.full_label} ({lineage.code.uuid})')
    test = len(lineage.test_set) if lineage.test_set is not None else 0
    click.echo(f'training set: {len(lineage.training_set)} structures; test set: {test}')
    for entry in lineage.files:
        click.echo(
            f'file {entry["filename"]} sha256={entry["sha256"]} ({entry["format"]}): '
            f'{len(entry["rows"])} rows/frames: {entry["rows"]}'
        )
    for calculation in lineage.dft_calculations:
        click.echo(f'DFT: {calculation.process_label}<{calculation.pk}> {calculation.uuid}')
    click.echo(f'settings: {json.dumps(lineage.settings)}')


@cli.command('find')
@click.option('-e', '--element', 'elements', multiple=True, help='The potential covers this element (repeat).')
@click.option('--max-rmse-forces', type=float, default=None, help='meV/Å')
@click.option('--max-rmse-energy', type=float, default=None, help='meV/atom')
@click.option('--split', type=click.Choice(['test', 'train']), default='test')
@click.pass_context
def find_command(context, elements, max_rmse_forces, max_rmse_energy, split):
    """List potentials by elements and RMSE."""
    _load(context)
    from aiida_mlip_autopipe.lineage import find_potentials

    found = find_potentials(list(elements) or None, max_rmse_forces, max_rmse_energy, split=split)
    for node in found:
        attributes = node.base.attributes
        click.echo(
            f'{node.pk}\t{node.uuid}\t{",".join(attributes.get("elements", []))}\t'
            f'E {attributes.get(f"rmse_energy_{split}")} meV/atom\tF {attributes.get(f"rmse_forces_{split}")} meV/Å'
        )
    if not found:
        click.echo('no potential matches')


@cli.command('plot')
@click.argument('node')
@click.option('-o', '--output', type=click.Path(path_type=pathlib.Path), default=pathlib.Path('.'), show_default=True)
@click.pass_context
def plot_command(context, node, output):
    """Write learning_curve.png and parity.png of a fit (a potential, calculation or workflow pk/UUID)."""
    _load(context)
    from aiida import orm

    from aiida_mlip_autopipe.plots import make_plots

    try:
        paths = make_plots(orm.load_node(node), output)
    except ValueError as exception:
        raise click.ClickException(str(exception)) from exception
    for path in paths:
        click.echo(str(path))
