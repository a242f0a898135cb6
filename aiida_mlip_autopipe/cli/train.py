"""``mlip-autopipe train``: a training from a YAML file of ``TrainingConfig`` fields, or from a protocol."""

from __future__ import annotations

import pathlib

import click
import yaml
from aiida.cmdline.params import options, types
from aiida.cmdline.utils import decorators, echo

from aiida_mlip_autopipe.cli import cli
from aiida_mlip_autopipe.cli.utils import one_line_errors


def _load_yaml(path: pathlib.Path, what: str) -> dict:
    """A YAML mapping from ``path``, or a one-line error."""
    try:
        document = yaml.safe_load(path.read_text('utf-8'))
    except (OSError, yaml.YAMLError) as exception:
        raise click.BadParameter(f'{path}: {" ".join(str(exception).split())}', param_hint=what) from exception
    if not isinstance(document, dict):
        raise click.BadParameter(f'{path}: expected a mapping of {what} keys', param_hint=what)
    return document


def _train_from_config(path: pathlib.Path, force: bool = False) -> None:
    from pydantic import ValidationError

    from aiida_mlip_autopipe.calculations.settings import first_error_location
    from aiida_mlip_autopipe.trainer import PacemakerTrainer, TrainingConfig

    try:
        config = TrainingConfig.model_validate(_load_yaml(path, 'CONFIG'))
    except ValidationError as exception:
        raise click.BadParameter(f'{path}: {first_error_location(exception)}', param_hint='CONFIG') from exception
    written = PacemakerTrainer(config, overwrite=force).train()
    echo.echo_success(f'potential written to {written}')


def _train_from_protocol(code, protocol, group, training_sets, overrides, daemon) -> None:
    from aiida.engine import run_get_node, submit

    from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain

    if bool(group) == bool(training_sets):
        raise click.UsageError('give the data: either -G/--group or -S/--training-set (not both)')
    builder = PacemakerTrainingWorkChain.get_builder_from_protocol(
        code,
        protocol,
        overrides=_load_yaml(overrides, '--overrides') if overrides else None,
        group=group.label if group else None,
        training_sets={f'set_{index}': node for index, node in enumerate(training_sets)} or None,
    )
    if daemon:
        node = submit(builder)
        echo.echo_success(f'submitted PacemakerTrainingWorkChain<{node.pk}>; follow it with `verdi process show`')
        return
    _, node = run_get_node(builder)
    if not node.is_finished_ok:
        echo.echo_critical(f'PacemakerTrainingWorkChain<{node.pk}> failed [{node.exit_status}]: {node.exit_message}')
    metrics = node.outputs.metrics.get_dict()
    echo.echo_success(
        f'PacemakerTrainingWorkChain<{node.pk}>: potential {node.outputs.potential.pk}; test '
        f'{metrics.get("rmse_energy_test", float("nan")):.2f} meV/atom, '
        f'{metrics.get("rmse_forces_test", float("nan")):.1f} meV/Å'
    )


@cli.command('train')
@click.argument('config', type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path), required=False)
@click.option(
    '--protocol',
    type=click.Choice(['fast', 'moderate', 'precise']),
    default=None,
    help='Train the data of -G/-S with this protocol instead of a CONFIG file.',
)
@options.CODE(required=False, help='The pacemaker code (with --protocol).')
@options.GROUP(required=False, help='A group of TrainingSetData and/or DFT calculations (with --protocol).')
@click.option(
    '-S',
    '--training-set',
    'training_sets',
    type=types.DataParamType(sub_classes=('aiida.data:mlip_autopipe.training_set',)),
    multiple=True,
    help='A TrainingSetData (repeat; with --protocol).',
)
@click.option(
    '--overrides',
    type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
    default=None,
    help="A YAML file merged into the protocol's inputs (e.g. settings: {fit: {maxiter: 50}}).",
)
@click.option('-D', '--daemon', is_flag=True, help='Submit to the daemon instead of running here (with --protocol).')
@click.option('-f', '--force', is_flag=True, help='Replace an existing potential file in output_dir (with CONFIG).')
@decorators.with_dbenv()
@one_line_errors
def train_command(config, protocol, code, group, training_sets, overrides, daemon, force):
    """Train a potential: from CONFIG (a YAML file of TrainingConfig's fields), or with --protocol on stored data."""
    if (config is None) == (protocol is None):
        raise click.UsageError('give either a CONFIG file or --protocol (with -X/--code and the data)')
    if config is not None:
        _train_from_config(config, force)
        return
    if code is None:
        raise click.UsageError('--protocol needs -X/--code, the pacemaker code')
    _train_from_protocol(code, protocol, group, training_sets, overrides, daemon)
