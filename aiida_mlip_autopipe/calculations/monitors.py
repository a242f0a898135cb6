"""CalcJob monitors: stop a pacemaker job from AiiDA's side (e.g. a walltime on a scheduler that has none)."""

from __future__ import annotations

import time
from pathlib import PurePosixPath

from aiida.orm import CalcJobNode
from aiida.transports import Transport

__all__ = ('WALLTIME_MESSAGE', 'walltime')

#: The start of the monitor's message; the restart handler recognises an out-of-walltime stop by it.
WALLTIME_MESSAGE = 'walltime exceeded'


def walltime(node: CalcJobNode, transport: Transport, seconds: float) -> str | None:
    """Ask AiiDA to kill the job once it has run for ``seconds`` (counted from its submission script's upload).

    ``core.direct`` ignores ``max_wallclock_seconds``; this monitor gives localhost runs (and tests) a walltime.
    Use it as ``monitors={'walltime': Dict({'entry_point': 'mlip_autopipe.walltime', 'kwargs': {'seconds': 3600}})}``.
    After the kill the files are retrieved as usual, so the last interim potential can be continued.
    """
    workdir = node.get_remote_workdir()
    if workdir is None:
        return None
    started = transport.get_attribute(str(PurePosixPath(workdir) / '_aiidasubmit.sh')).st_mtime
    elapsed = time.time() - started
    if elapsed > seconds:
        return f'{WALLTIME_MESSAGE}: the job ran {elapsed:.0f} s, longer than the {seconds} s allowed'
    return None
