"""``mlip-autopipe validate``: the physics of a potential against a reference labeller, as a table."""

from __future__ import annotations

import click
from aiida.cmdline.params import arguments, types
from aiida.cmdline.utils import decorators, echo

from aiida_mlip_autopipe.cli import cli
from aiida_mlip_autopipe.cli.utils import one_line_errors
from aiida_mlip_autopipe.validation.common import PROPERTIES

#: the properties computed when none is named (MD only when asked: it takes longest)
DEFAULT_PROPERTIES = ('eos', 'elastic', 'vacancy', 'phonons')


def default_structures(elements: list[str]) -> dict:
    """One ``StructureData`` per element: ASE's reference crystal (``bulk(element, cubic=True)``)."""
    from aiida import orm
    from ase.build import bulk

    structures = {}
    for element in elements:
        try:
            atoms = bulk(element, cubic=True)
        except (ValueError, KeyError, RuntimeError) as exception:
            raise ValueError(f'{element}: no reference crystal in ASE ({exception}); give --structure') from None
        structures[element] = orm.StructureData(ase=atoms)
    return structures


def latest_reference(labeller: str):
    """The ``reference_labels`` of the newest finished validation with ``labeller`` (or ``None``)."""
    from aiida import orm

    from aiida_mlip_autopipe.workflows.validation import PotentialValidationWorkChain

    query = orm.QueryBuilder()
    query.append(
        PotentialValidationWorkChain,
        filters={'attributes.exit_status': 0},
        tag='validation',
    )
    query.append(
        orm.Str, with_outgoing='validation', edge_filters={'label': 'labeller'}, filters={'attributes.value': labeller}
    )
    query.append(orm.Data, with_incoming='validation', edge_filters={'label': 'reference_labels'}, project='*')
    query.order_by({'validation': {'ctime': 'desc'}}).limit(1)
    found = query.first(flat=True)
    return found


def failure_notes(node) -> list[str]:
    """Why a quantity of the table is empty: the ``*_failed`` reasons of each side (e.g. an EOS without minimum)."""
    from aiida.common.links import LinkType

    notes = []
    for link in node.base.links.get_outgoing(link_type=LinkType.CALL_CALC).all():
        label = link.link_label
        if not label.startswith(('potential_', 'reference_')) or 'results' not in link.node.outputs:
            continue
        side, structure = label.split('_', 1)
        for key, reason in sorted(link.node.outputs.results.get_dict().items()):
            if key.endswith('_failed'):
                notes.append(f'{structure}: {key[: -len("_failed")]} of the {side} failed: {reason}')
    return notes


def table_rows(properties: dict) -> list[list]:
    """``[structure, quantity, potential, reference, error, relative error %, unit]`` rows of a validation table."""
    rows = []
    for label, quantities in properties.items():
        for quantity, row in quantities.items():
            relative = row.get('relative_error')
            rows.append(
                [
                    label,
                    quantity,
                    row.get('potential'),
                    row.get('reference'),
                    row.get('error'),
                    None if relative is None else 100.0 * relative,
                    row.get('unit', ''),
                ]
            )
    return rows


@cli.command('validate')
@arguments.NODE('POTENTIAL')
@click.option(
    '-s',
    '--structure',
    'structures',
    multiple=True,
    type=types.DataParamType(sub_classes=('aiida.data:core.structure',)),
    help="A crystal to validate on (StructureData pk/UUID/label; repeat). Default: ASE's crystal of each element.",
)
@click.option(
    '-p',
    '--property',
    'properties',
    multiple=True,
    type=click.Choice(PROPERTIES),
    help=f'A property (repeat). Default: {", ".join(DEFAULT_PROPERTIES)}.',
)
@click.option('--labeller', default='ase:emt', show_default=True, type=click.Choice(['ase:emt']), help='Reference.')
@click.option(
    '--reuse/--no-reuse',
    default=True,
    show_default=True,
    help='Reuse the reference labels of the newest validation with the same labeller (no new reference run for '
    'structures found there).',
)
@click.option(
    '--active-set',
    type=types.DataParamType(sub_classes=('aiida.data:core.singlefile',)),
    default=None,
    help="The potential's active set (.asi): the extrapolation grade along MD.",
)
@decorators.with_dbenv()
@one_line_errors
def validate_command(potential, structures, properties, labeller, reuse, active_set):
    """Validate POTENTIAL (a .yace node, or the training workflow, loop or calculation that made it: then its active
    set too): EOS, elastic constants, vacancy, phonons, MD against a reference; print the table (relative error
    in %)."""
    from aiida import orm
    from aiida.engine import run_get_node
    from tabulate import tabulate

    from aiida_mlip_autopipe.workflows.validation import PotentialValidationWorkChain, potential_elements, potential_of

    potential, made_with = potential_of(potential)
    active_set = active_set if active_set is not None else made_with
    if structures:
        labelled = {}
        for structure in structures:
            key = f'{structure.get_formula(mode="hill_compact")}_{structure.pk}'
            labelled[key.replace('-', '_')] = structure
    else:
        labelled = default_structures(potential_elements(potential))
    inputs = {
        'potential': potential,
        'structures': labelled,
        'properties': orm.Dict({name: {} for name in (properties or DEFAULT_PROPERTIES)}),
        'labeller': orm.Str(labeller),
    }
    if active_set is not None:
        inputs['active_set'] = active_set
    reference = latest_reference(labeller) if reuse else None
    if reference is not None:
        inputs['reference'] = reference
    _, node = run_get_node(PotentialValidationWorkChain, **inputs)
    if not node.is_finished_ok:
        raise ValueError(f'validation {node.pk} failed [{node.exit_status}]: {node.exit_message}')
    headers = ['structure', 'quantity', 'potential', 'reference', 'error', 'error %', 'unit']
    echo.echo(tabulate(table_rows(node.outputs.properties.get_dict()), headers=headers, floatfmt='.4g'))
    for note in failure_notes(node):
        echo.echo_warning(note)
    # elastic constants or a vacancy alone make no plot: the namespace is then absent
    plotted = node.outputs.plots.items() if 'plots' in node.outputs else []
    plots = ', '.join(f'{name}<{plot.pk}>' for name, plot in sorted(plotted)) or 'none'
    echo.echo(f'validation {node.pk}; properties Dict<{node.outputs.properties.pk}>; plots: {plots}')
