"""Shared helpers of the benchmarks: a throw-away AiiDA profile, timing of subprocesses with peak memory."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
WORK = REPO / 'benchmarks' / '_work'
PLUGIN_PYTHON = REPO / '.venv' / 'bin' / 'python'
PACEMAKER_PYTHON = REPO / '.venv-pacemaker' / 'bin' / 'python'


def ensure_profile(name: str = 'benchmarks', broker: bool = False) -> str:
    """Create (once) a SQLite profile under benchmarks/_work/aiida and point AIIDA_PATH at it (call it before
    importing aiida). ``broker``: with aiida-core's ZeroMQ broker, for the daemon; else none (``run()`` only)."""
    os.environ['AIIDA_PATH'] = str(WORK / 'aiida')
    (WORK / 'aiida').mkdir(parents=True, exist_ok=True)
    verdi = [str(REPO / '.venv' / 'bin' / 'verdi')]
    if subprocess.run([*verdi, 'profile', 'show', name], capture_output=True, check=False).returncode != 0:
        flag = '--use-zeromq' if broker else '--no-broker'
        subprocess.run([*verdi, 'presto', flag, '--profile-name', name], check=True, capture_output=True)
        # pacemaker's threads come from the computer: localhost runs jobs on all cores of this machine
        code = f"from aiida import load_profile, orm; load_profile('{name}'); "
        code += f"orm.load_computer('localhost').set_default_mpiprocs_per_machine({os.cpu_count() or 1})"
        subprocess.run([str(PLUGIN_PYTHON), '-c', code], check=True)
    return name


def run_measured(argv: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run a command; return (wall seconds, peak RSS in MiB, stdout)."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stdout, stderr = process.stdout.read(), process.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stderr.write(stderr)
        raise RuntimeError(f'{argv} failed')
    return wall, usage.ru_maxrss / 1024, stdout


def pacemaker_code():
    """The ``pacemaker@localhost`` code of the profile (created once, from .venv-pacemaker)."""
    from aiida import orm

    try:
        return orm.load_code('pacemaker@localhost')
    except Exception:
        return orm.InstalledCode(
            label='pacemaker',
            computer=orm.load_computer('localhost'),
            filepath_executable=str(REPO / '.venv-pacemaker' / 'bin' / 'pacemaker'),
            default_calc_job_plugin='mlip_autopipe.pacemaker',
        ).store()
