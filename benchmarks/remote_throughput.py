"""Benchmark: throughput of small fits on the Slurm computer of scripts/cluster/start.sh, through the daemon.

Six tiny fits (the quick-start test's Cu-Al data, 5 functions per element, 5 iterations, one thread each) are run
one at a time (each submitted when the previous one finished) and then all six submitted at once to a daemon with
two workers; Slurm runs as many at once as the node has cores. Also one fit on localhost (``core.local`` +
``core.direct``) for the remote vs local time of the same fit. Prints the figures; nothing is asserted.

Needs the cluster (``bash scripts/cluster/start.sh``, as root). Usage: python benchmarks/remote_throughput.py [N]
"""

from __future__ import annotations

import statistics
import sys
import time

from _common import REPO, ensure_profile

SETTINGS = {
    'potential': {'functions': {'number_of_functions_per_element': 5}},
    'fit': {'maxiter': 5},
    'backend': {'display_step': 2},
}
ONE_THREAD = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}}


def cluster_env() -> dict[str, str]:
    path = REPO / '.cluster' / 'env'
    if not path.is_file():
        raise SystemExit(f'{path} is missing: run `bash scripts/cluster/start.sh` (as root) first')
    return dict(line.split('=', 1) for line in path.read_text().splitlines() if '=' in line)


def codes(cluster: dict[str, str]):
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        computer = orm.load_computer('bench-slurm')
    except NotExistent:
        computer = orm.Computer(
            label='bench-slurm',
            hostname=cluster['CLUSTER_HOST_ALIAS'],
            workdir=f'{cluster["CLUSTER_WORKDIR"]}/bench',
            transport_type='core.ssh_async',
            scheduler_type='core.slurm',
        ).store()
        computer.set_default_mpiprocs_per_machine(int(cluster['CLUSTER_CPUS']))
        computer.set_minimum_job_poll_interval(1)
        computer.configure(host=cluster['CLUSTER_HOST_ALIAS'], backend='asyncssh', safe_interval=0.5)
    local = orm.load_computer('localhost')
    result = []
    for machine, executable in (
        (computer, cluster['CLUSTER_PACEMAKER']),
        (local, str(REPO / '.venv-pacemaker' / 'bin' / 'pacemaker')),
    ):
        query = orm.QueryBuilder().append(orm.InstalledCode, filters={'label': 'pacemaker-bench'}, tag='code')
        query.append(orm.Computer, with_node='code', filters={'id': machine.pk})
        code = (
            query.first(flat=True)
            or orm.InstalledCode(label='pacemaker-bench', computer=machine, filepath_executable=executable).store()
        )
        result.append(code)
    return result


def inputs(code, training, test) -> dict:
    from aiida import orm

    return {
        'code': code,
        'training_set': training,
        'test_set': test,
        'settings': orm.Dict(SETTINGS),
        'metadata': {'options': ONE_THREAD},
    }


def await_all(nodes, timeout: float = 1800) -> None:
    deadline = time.time() + timeout
    while not all(node.is_terminated for node in nodes):
        if time.time() > deadline:
            raise SystemExit('timed out')
        time.sleep(0.5)


def main(count: int = 6) -> None:
    profile = ensure_profile('benchmarks-daemon', broker=True)  # sets AIIDA_PATH before aiida is imported
    from aiida import load_profile

    load_profile(profile)
    from aiida.engine import submit
    from aiida.engine.daemon.client import get_daemon_client

    from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation
    from aiida_mlip_autopipe.data.training_set import TrainingSetData
    from aiida_mlip_autopipe.demo.emt import emt_structures

    sys.path.insert(0, str(REPO))
    remote, local = codes(cluster_env())
    training = TrainingSetData.from_atoms(emt_structures(16, repeat=2, seed=11)).store()
    test = TrainingSetData.from_atoms(emt_structures(4, repeat=2, seed=12)).store()
    client = get_daemon_client()
    if client.is_daemon_running:
        client.stop_daemon(wait=True)
    client.start_daemon(number_workers=2)
    try:
        latency = {}
        for label, code in (('local', local), ('remote', remote)):
            start = time.perf_counter()
            node = submit(PacemakerCalculation, **inputs(code, training, test))
            await_all([node])
            latency[label] = time.perf_counter() - start
            assert node.is_finished_ok, (label, node.exit_status, node.exit_message)
        start = time.perf_counter()
        sequential = []
        for _ in range(count):
            node = submit(PacemakerCalculation, **inputs(remote, training, test))
            await_all([node])
            sequential.append(node)
        one_at_a_time = time.perf_counter() - start
        start = time.perf_counter()
        batch = [submit(PacemakerCalculation, **inputs(remote, training, test)) for _ in range(count)]
        await_all(batch)
        at_once = time.perf_counter() - start
    finally:
        client.stop_daemon(wait=True)
    finished = sum(node.is_finished_ok for node in sequential + batch)
    fit_times = [node.outputs.metrics['fit_time'] for node in batch if node.is_finished_ok]
    print(
        f'one tiny fit (one thread), submit to finished: local {latency["local"]:.1f} s, '
        f'Slurm over SSH {latency["remote"]:.1f} s'
    )
    print(f'{count} fits one at a time: {one_at_a_time:.1f} s ({60 * count / one_at_a_time:.1f} fits/min)')
    print(
        f'{count} fits at once, 2 daemon workers: {at_once:.1f} s ({60 * count / at_once:.1f} fits/min), '
        f'speed-up {one_at_a_time / at_once:.2f}x'
    )
    print(
        f'finished ok: {finished} of {2 * count}; pacemaker fit time per job (at once): '
        f'median {statistics.median(fit_times):.1f} s'
    )
    print(f'distinct Slurm job ids: {len({node.get_job_id() for node in sequential + batch})}')


if __name__ == '__main__':
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
