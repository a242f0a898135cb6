"""``mlip-autopipe``: a verdi-style command line for datasets, training and trained potentials.

The root group is aiida-core's ``VerdiCommandGroup`` with its ``--profile`` option (the profile is loaded when the
option is parsed) and ``--verbosity``; commands take aiida-core's node arguments. Every error is one line with a
non-zero exit status (:func:`~aiida_mlip_autopipe.cli.utils.one_line_errors`), never a traceback.
"""

from __future__ import annotations

import sys

import click
from aiida.cmdline.groups import VerdiCommandGroup
from aiida.cmdline.params import options, types


class CommandGroup(VerdiCommandGroup):
    """``VerdiCommandGroup`` whose usage errors (an unknown pk, a missing argument) are one line, not three."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exception:
            click.echo(f'Error: {" ".join(exception.format_message().split())}', err=True)
            sys.exit(exception.exit_code)
        except click.Abort:
            click.echo('Aborted!', err=True)
            sys.exit(1)
        sys.exit(0)


@click.group('mlip-autopipe', cls=CommandGroup, context_settings={'help_option_names': ['-h', '--help']})
@options.PROFILE(type=types.ProfileParamType(load_profile=True), expose_value=False)
def cli() -> None:
    """Train ACE potentials with pacemaker through AiiDA, and ask where they came from."""


from aiida_mlip_autopipe.cli import data, potentials, train, validate  # noqa: E402, F401  (register the commands)
