"""A cluster for the remote tests: SSH computers into another Unix user, and a one-node Slurm.

``scripts/cluster/start.sh`` sets it up (``scripts/run_tests.sh`` runs it) and writes ``.cluster/env``; without it
these tests fail (they never skip). The remote user's home, where its pacemaker lives, is hidden from the test
process by ``scripts/run_tests.sh`` (an empty tmpfs over it in a private mount namespace), so whatever works here
works only through the transport.
"""

from __future__ import annotations

import os
import pathlib

import pytest

from tests.helpers import REPO

CLUSTER_ENV = pathlib.Path(os.environ.get('CLUSTER_ENV', REPO / '.cluster' / 'env'))


@pytest.fixture(scope='session')
def cluster() -> dict[str, str]:
    """The cluster's variables (``CLUSTER_HOST_ALIAS``, ``CLUSTER_PACEMAKER``, ...)."""
    if not CLUSTER_ENV.is_file():
        pytest.fail(f'no cluster: {CLUSTER_ENV} is missing; run scripts/cluster/start.sh (as root)')
    pairs = (line.split('=', 1) for line in CLUSTER_ENV.read_text().splitlines() if '=' in line)
    return {key.strip(): value.strip() for key, value in pairs}


def _computer(label: str, cluster: dict[str, str], hostname: str, transport: str, scheduler: str):
    from aiida import orm

    computer = orm.Computer(
        label=label,
        hostname=hostname,
        workdir=f'{cluster["CLUSTER_WORKDIR"]}/{label}',
        transport_type=transport,
        scheduler_type=scheduler,
        description=f'{cluster["CLUSTER_USER"]}@127.0.0.1:{cluster["CLUSTER_SSH_PORT"]} ({scheduler})',
    ).store()
    computer.set_default_mpiprocs_per_machine(int(cluster['CLUSTER_CPUS']))
    computer.set_minimum_job_poll_interval(1)
    return computer


@pytest.fixture(scope='session')
def slurm_computer(aiida_profile, cluster):
    """``core.ssh_async`` (asyncssh, the ``Host`` entry in ``~/.ssh/config``) + ``core.slurm``."""
    computer = _computer('cluster-slurm', cluster, cluster['CLUSTER_HOST_ALIAS'], 'core.ssh_async', 'core.slurm')
    computer.configure(host=cluster['CLUSTER_HOST_ALIAS'], backend='asyncssh', safe_interval=0.5)
    return computer


@pytest.fixture(scope='session')
def ssh_computer(aiida_profile, cluster):
    """``core.ssh`` (paramiko: address, port, user and key configured on the computer) + ``core.direct``."""
    computer = _computer('cluster-direct', cluster, '127.0.0.1', 'core.ssh', 'core.direct')
    computer.configure(
        username=cluster['CLUSTER_USER'],
        port=int(cluster['CLUSTER_SSH_PORT']),
        key_filename=cluster['CLUSTER_KEY'],
        look_for_keys=False,
        allow_agent=False,
        key_policy='RejectPolicy',
        load_system_host_keys=True,
        safe_interval=0.5,
    )
    return computer


def remote_code(computer, cluster, label: str = 'pacemaker', **extra):
    from aiida import orm

    return orm.InstalledCode(
        label=label,
        computer=computer,
        filepath_executable=cluster['CLUSTER_PACEMAKER'],
        default_calc_job_plugin='mlip_autopipe.pacemaker',
        **extra,
    ).store()


@pytest.fixture(scope='session')
def slurm_pacemaker(slurm_computer, cluster):
    """The remote user's pacemaker on the Slurm computer."""
    return remote_code(slurm_computer, cluster)


@pytest.fixture(scope='session')
def ssh_pacemaker(ssh_computer, cluster):
    """The remote user's pacemaker on the SSH + direct computer."""
    return remote_code(ssh_computer, cluster)
