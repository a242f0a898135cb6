"""``mlip-autopipe import / collect``: bring an ASE database, an extxyz file or a group of DFT calculations in as a
``TrainingSetData``, with provenance."""

from __future__ import annotations

import contextlib
import json
import pathlib

import click
from aiida.cmdline.params import arguments
from aiida.cmdline.utils import decorators, echo

from aiida_mlip_autopipe.cli import cli
from aiida_mlip_autopipe.cli.utils import one_line_errors, progress_bar

EXTXYZ_SUFFIXES = ('.xyz', '.extxyz')


def _count_rows(path: pathlib.Path, selection: str | None) -> int | None:
    """The rows an ASE SQLite database holds (for the progress bar), read-only; ``None`` when it cannot tell."""
    import sqlite3

    if selection or not path.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f'{path.resolve().as_uri()}?mode=ro', uri=True)) as connection:
            return connection.execute('SELECT COUNT(*) FROM systems').fetchone()[0]
    except sqlite3.Error:  # not SQLite, or not ASE's: the importer says so in its own words
        return None


@cli.command('import')
@click.argument('path', type=click.Path(path_type=pathlib.Path))
@click.option('--selection', default=None, help="ASE db query string, e.g. 'config_type=bulk,energy<0'.")
@click.option('--on-missing-forces', type=click.Choice(['refuse', 'skip', 'keep']), default='refuse', show_default=True)
@click.option('--on-invalid', type=click.Choice(['refuse', 'skip']), default='refuse', show_default=True)
@click.option('-G', '--group', 'group_label', default=None, help='Also add the imported node to this group.')
@decorators.with_dbenv()
@one_line_errors
def import_command(path, selection, on_missing_forces, on_invalid, group_label):
    """Import an ASE database (.db, .json) or an extxyz file as a TrainingSetData."""
    from aiida import orm

    from aiida_mlip_autopipe.importers.ase_db import import_ase_db
    from aiida_mlip_autopipe.importers.extxyz import import_extxyz
    from aiida_mlip_autopipe.importers.source_file import check_readable

    policies = {'on_missing_forces': on_missing_forces, 'on_invalid': on_invalid}
    is_extxyz = path.suffix.lower() in EXTXYZ_SUFFIXES
    if is_extxyz and selection:
        raise click.UsageError('--selection applies to ASE databases only')
    path = check_readable(path)  # a missing or empty file: one line, before the progress bar
    length = None if is_extxyz else _count_rows(path, selection)
    with progress_bar(f'reading {path.name}', length) as progress:
        if is_extxyz:
            node = import_extxyz(path, progress=progress, **policies)
        else:
            node = import_ase_db(path, selection, progress=progress, **policies)
    if group_label:
        orm.Group.collection.get_or_create(group_label)[0].add_nodes(node)
    echo.echo_success(f'TrainingSetData<{node.pk}> {node.uuid}: {len(node)} structures, elements {node.elements}')
    echo.echo(json.dumps(node.base.attributes.get('import_info'), indent=1))


@cli.command('collect')
@arguments.GROUP('SOURCE')
@click.option('--skip-failed', is_flag=True, help='Skip (and count) calculations that did not finish successfully.')
@click.option('--frames', type=click.Choice(['last', 'all']), default='last', show_default=True)
@click.option('--allow-mixed-settings', is_flag=True, help='Accept calculations whose energy-deciding settings differ.')
@click.option('-G', '--group', 'group_label', default=None, help='Add the collected node to this group.')
@decorators.with_dbenv()
@one_line_errors
def collect_command(source, skip_failed, frames, allow_mixed_settings, group_label):
    """Collect the PwCalculation / PwBaseWorkChain results of group SOURCE into a TrainingSetData."""
    from aiida import orm

    from aiida_mlip_autopipe.collection.pw import collect_from_pw

    nodes = [node for node in source.nodes if isinstance(node, orm.ProcessNode)]
    if not nodes:
        raise click.BadParameter(f'group {source.label!r} holds no DFT calculations', param_hint='SOURCE')
    with progress_bar(f'collecting {len(nodes)} calculations', len(nodes)) as progress:
        node = collect_from_pw(
            nodes, skip_failed=skip_failed, frames=frames, allow_mixed_settings=allow_mixed_settings, progress=progress
        )
    if group_label:
        orm.Group.collection.get_or_create(group_label)[0].add_nodes(node)
    report = node.base.extras.get('collection', {})
    echo.echo_success(
        f'TrainingSetData<{node.pk}> {node.uuid}: {len(node)} structures from {report.get("calculations")} '
        f'calculation(s), {len(report.get("skipped_failed", []))} skipped'
    )
