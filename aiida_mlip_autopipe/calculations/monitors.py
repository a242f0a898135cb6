"""CalcJob monitors: stop a pacemaker job from AiiDA's side (e.g. a walltime on a scheduler that has none)."""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath

from aiida.orm import CalcJobNode
from aiida.transports import Transport

from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation

__all__ = ('WALLTIME_MESSAGE', 'walltime')

#: The start of the monitor's message; the restart handler recognises an out-of-walltime stop by it.
WALLTIME_MESSAGE = 'walltime exceeded'


def walltime(node: CalcJobNode, transport: Transport, seconds: float) -> str | None:
    """Ask AiiDA to kill the job once it has run for ``seconds``, counted from the job's own start.

    The job script writes its start time (``date +%s``) on the machine that runs it; the monitor compares it with
    that machine's clock, so neither the time in the queue nor a clock difference between the AiiDA machine and
    the cluster counts. ``core.direct`` ignores ``max_wallclock_seconds``; this monitor gives such runs a walltime.
    Use it as ``monitors={'walltime': Dict({'entry_point': 'mlip_autopipe.walltime', 'kwargs': {'seconds': 3600}})}``.
    After the kill the files are retrieved as usual, so the last interim potential can be continued.
    """
    workdir = node.get_remote_workdir()
    if workdir is None:
        return None
    marker = str(PurePosixPath(workdir) / PacemakerCalculation.JOB_STARTED)
    retval, stdout, _ = transport.exec_command_wait(f'cat {shlex.quote(marker)} 2>/dev/null && date +%s')
    values = stdout.split()
    if retval != 0 or len(values) != 2 or not all(value.isdigit() for value in values):
        return None  # not started yet (queued), or the marker is not written yet
    elapsed = int(values[1]) - int(values[0])
    if elapsed > seconds:
        return f'{WALLTIME_MESSAGE}: the job ran {elapsed} s, longer than the {seconds} s allowed'
    return None
