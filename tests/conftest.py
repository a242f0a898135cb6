"""Shared fixtures: a temporary AiiDA profile, the real pacemaker code, sandbox and parser helpers, shared fits."""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest

from tests.helpers import DAEMON_CALL_TIMEOUT, FIT_OPTIONS, FIXTURES, REPO, TINY_SETTINGS, fit_cu_al

pytest_plugins = ['aiida.tools.pytest_fixtures']


#: The test profile's broker: aiida-core's built-in 'core.zeromq' (no service) by default, or 'core.rabbitmq'
#: (CI starts RabbitMQ), so that the daemon tests always run; 'none' gives a broker-less profile (run() only).
BROKER = os.environ.get('AIIDA_TEST_BROKER', 'core.zeromq')
BROKER = None if BROKER == 'none' else BROKER


#: The test profile's storage: 'core.sqlite_dos' (default) or 'core.psql_dos' (CI: a fresh database on the
#: PostgreSQL server that scripts/start_postgres.sh starts; AIIDA_TEST_PG_HOST/PORT/USER/PASSWORD to change).
STORAGE = os.environ.get('AIIDA_TEST_STORAGE', 'core.sqlite_dos')


def psql_storage_config(repository: pathlib.Path) -> dict:
    """Create a new, empty PostgreSQL database for this session; return its ``core.psql_dos`` configuration."""
    import uuid

    import psycopg

    config = {
        'database_engine': 'postgresql_psycopg',
        'database_hostname': os.environ.get('AIIDA_TEST_PG_HOST', 'localhost'),
        'database_port': int(os.environ.get('AIIDA_TEST_PG_PORT', '5432')),
        'database_username': os.environ.get('AIIDA_TEST_PG_USER', 'aiida_test'),
        'database_password': os.environ.get('AIIDA_TEST_PG_PASSWORD', 'aiida_test'),
        'database_name': f'mlip_autopipe_test_{uuid.uuid4().hex[:12]}',
        'repository_uri': repository.as_uri(),
    }
    try:
        with psycopg.connect(
            host=config['database_hostname'],
            port=config['database_port'],
            user=config['database_username'],
            password=config['database_password'],
            dbname='postgres',
            autocommit=True,
        ) as connection:
            connection.execute(f'CREATE DATABASE "{config["database_name"]}"')
    except psycopg.OperationalError as exception:
        pytest.fail(
            f'AIIDA_TEST_STORAGE=core.psql_dos but no PostgreSQL to use ({exception}): run scripts/start_postgres.sh'
        )
    return config


#: Markers of tests that run real programs or services; each such test is also marked ``slow``.
SLOW_MARKERS = frozenset({'pacemaker', 'daemon', 'remote', 'dft'})

#: Fixtures that start (or are only needed to start) pacemaker, pw.x, Slurm or the daemon: a test requesting one,
#: directly or through another fixture, is ``slow`` even without a marker, so the fast tier never starts them.
SLOW_FIXTURES = frozenset(
    {
        'pacemaker_executable',  # pacemaker_code, tiny_fit, train_cu_al, emt_loop depend on it
        'pw_code',
        'cluster',
        'started_daemon_client',
        'submit_and_await',
    }
)


#: Fixtures that start the daemon: a test requesting one is marked ``daemon`` (CI runs those after the rest, on one
#: worker: ``.ci/run``).
DAEMON_FIXTURES = frozenset({'started_daemon_client', 'submit_and_await', 'daemon_client'})

#: Minutes of worker time per test file (``--durations`` of the slow tier on 2 xdist workers, 2 cores, 2026-12-07):
#: the files are run costliest first, so that pytest-xdist's ``--dist loadfile`` fills the end with the fast files
#: instead of leaving one worker alone with a loop. A file not listed weighs 1 if it has slow tests, else 0.
FILE_MINUTES = {
    'tests/test_fidelity.py': 18,
    'tests/remote/test_remote.py': 14,
    'tests/active_learning/test_loop.py': 6,
    'tests/dft/test_active_learning_qe.py': 6,
    'tests/dft/test_qe.py': 4,
    'tests/workflows/test_restart_real.py': 3.5,
    'tests/active_learning/test_first_try.py': 3.2,
    'tests/active_learning/test_daemon.py': 3,
    'tests/cli/test_cli.py': 2.8,
    'tests/potentials/test_reference_energy.py': 2.7,
    'tests/workflows/test_training.py': 2.4,
    'tests/active_learning/test_example.py': 2,
    'tests/workflows/test_active_set_upfit.py': 2,
    'tests/validation/test_workflow.py': 1.8,
    'tests/baseline/test_delta.py': 1.7,
    'tests/fuzz/test_settings_fuzz.py': 1.7,
}


#: Folders whose files run on one pytest-xdist worker, as one unit: they share costly session fixtures that each
#: worker would otherwise build again (tests/dft: ``qe_al_group``, 28 pw.x runs, about 3 minutes).
FOLDERS_ON_ONE_WORKER = ('tests/dft/',)


def worker_unit(nodeid: str) -> str:
    """What runs on one pytest-xdist worker as a whole: a test's file, or its folder in ``FOLDERS_ON_ONE_WORKER``."""
    path = nodeid.split('::', 1)[0]
    return next((folder for folder in FOLDERS_ON_ONE_WORKER if path.startswith(folder)), path)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: absent with -p no:xdist
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, with the files of a folder in ``FOLDERS_ON_ONE_WORKER`` as one unit (``worker_unit``), in
    the collection's order."""
    if config.getvalue('dist') != 'loadfile':
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFixturesScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_unit(nodeid)

    # keep the collection's order (costliest units first: pytest_collection_modifyitems); by default xdist re-sorts
    # the units by their number of tests, which put a 3-test fidelity file after fifty one-second unit tests
    config.option.loadscopereorder = False
    return SharedFixturesScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """Mark ``daemon`` every test that starts the daemon, ``slow`` every test that runs pacemaker, pw.x, Slurm/SSH or
    the daemon (``pytest -m "not slow"``); on pytest-xdist workers, order the units (``worker_unit``) costliest first
    (``FILE_MINUTES`` summed over a unit's files; the tests of a file keep their order)."""
    weights: dict[str, float] = {}
    for item in items:
        markers = {marker.name for marker in item.iter_markers()}
        path = item.nodeid.split('::')[0]
        weights.setdefault(path, 0)
        fixtures = getattr(item, 'fixturenames', ())
        if DAEMON_FIXTURES.intersection(fixtures) and 'daemon' not in markers:
            item.add_marker(pytest.mark.daemon)
            markers.add('daemon')
        if markers & SLOW_MARKERS or SLOW_FIXTURES.intersection(fixtures):
            item.add_marker(pytest.mark.slow)
            weights[path] = FILE_MINUTES.get(path, 1)
    if 'PYTEST_XDIST_WORKER_COUNT' not in os.environ:
        return
    unit_weights: dict[str, float] = {}
    for path, weight in weights.items():
        unit_weights[worker_unit(path)] = unit_weights.get(worker_unit(path), 0) + weight
    position = {item.nodeid: index for index, item in enumerate(items)}
    items.sort(key=lambda item: (-unit_weights[worker_unit(item.nodeid)], position[item.nodeid]))


@pytest.fixture(scope='session')
def aiida_profile(aiida_config, aiida_profile_factory, tmp_path_factory):
    """The test profile: storage from ``AIIDA_TEST_STORAGE``, broker from ``AIIDA_TEST_BROKER``."""
    storage = {}
    if STORAGE == 'core.psql_dos':
        storage = {
            'storage_backend': STORAGE,
            'storage_config': psql_storage_config(tmp_path_factory.mktemp('repository')),
        }
    elif STORAGE != 'core.sqlite_dos':
        pytest.fail(f'AIIDA_TEST_STORAGE={STORAGE!r}: give core.sqlite_dos or core.psql_dos')
    with aiida_profile_factory(aiida_config, broker_backend=BROKER, **storage) as profile:
        yield profile


def find_pacemaker() -> pathlib.Path:
    """Return the ``pacemaker`` executable: ``$PACEMAKER_EXECUTABLE``, ``.venv-pacemaker/bin``, or the PATH."""
    candidates = [os.environ.get('PACEMAKER_EXECUTABLE'), REPO / '.venv-pacemaker' / 'bin' / 'pacemaker']
    candidates.append(shutil.which('pacemaker'))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return pathlib.Path(candidate)
    pytest.fail(
        'pacemaker not found: run scripts/install_pacemaker_env.sh (creates .venv-pacemaker) or set '
        'PACEMAKER_EXECUTABLE; tests that need the real pacemaker do not skip'
    )


@pytest.fixture(scope='session')
def pacemaker_executable() -> pathlib.Path:
    return find_pacemaker()


@pytest.fixture(scope='session')
def session_localhost(aiida_profile, tmp_path_factory):
    """A ``core.direct`` localhost computer for the whole session (workdir in pytest's tmp)."""
    from aiida import orm

    computer = orm.Computer(
        label='session-localhost',
        hostname='localhost',
        workdir=str(tmp_path_factory.mktemp('aiida_work')),
        transport_type='core.local',
        scheduler_type='core.direct',
    ).store()
    computer.set_minimum_job_poll_interval(0)
    computer.set_default_mpiprocs_per_machine(1)
    computer.configure(safe_interval=0)
    return computer


@pytest.fixture(scope='session')
def pacemaker_code(session_localhost, pacemaker_executable):
    """The real ``pacemaker`` as an ``InstalledCode`` on the session's localhost."""
    from aiida import orm

    return orm.InstalledCode(
        label='pacemaker',
        computer=session_localhost,
        filepath_executable=str(pacemaker_executable),
        default_calc_job_plugin='mlip_autopipe.pacemaker',
    ).store()


@pytest.fixture
def fake_code(session_localhost, tmp_path):
    """An ``InstalledCode`` pointing at a fake ``pacemaker`` path (for sandbox tests that run nothing)."""
    from aiida import orm

    return orm.InstalledCode(
        label='fake-pacemaker',
        computer=session_localhost,
        filepath_executable='/opt/pace env/bin/pacemaker',
        default_calc_job_plugin='mlip_autopipe.pacemaker',
    ).store()


@pytest.fixture(scope='session')
def daemon_timeout(aiida_profile):
    """The test profile's ``daemon.timeout``: DAEMON_CALL_TIMEOUT for every call of its daemon client, including
    aiida-core's own stop of the daemon at the end of the session (that stop timed out on a loaded machine)."""
    from aiida.manage import get_config

    get_config().set_option('daemon.timeout', DAEMON_CALL_TIMEOUT, scope=aiida_profile.name)
    return DAEMON_CALL_TIMEOUT


@pytest.fixture(scope='session')
def daemon_client(daemon_timeout, daemon_client):
    """aiida-core's ``daemon_client``, created once the profile's ``daemon.timeout`` is set."""
    return daemon_client


@pytest.fixture(scope='session')
def cu_al_sets(aiida_profile):
    """A stored two-element (Cu, Al) EMT training set (16 x 32 atoms) and test set (4 x 32 atoms)."""
    from aiida_mlip_autopipe.data.training_set import TrainingSetData
    from aiida_mlip_autopipe.demo.emt import emt_structures

    training = TrainingSetData.from_atoms(emt_structures(16, repeat=2, seed=11)).store()
    test = TrainingSetData.from_atoms(emt_structures(4, repeat=2, seed=12)).store()
    return training, test


@pytest.fixture(scope='session')
def cu_set(aiida_profile):
    """A stored training set of 3 EMT-labelled Cu cells: inputs of calculations that are prepared, not fitted."""
    from aiida_mlip_autopipe.data.training_set import TrainingSetData
    from aiida_mlip_autopipe.demo.emt import emt_structures

    return TrainingSetData.from_atoms(emt_structures(3, elements=('Cu',), seed=5)).store()


@pytest.fixture(scope='session')
def train_cu_al(pacemaker_code, cu_al_sets):
    """Return a runner of a tiny real ``PacemakerTrainingWorkChain`` on all 20 Cu-Al structures (given inputs win)."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlip_autopipe.data.training_set import TrainingSetData
    from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain

    merged = TrainingSetData.concatenate(list(cu_al_sets)).store()

    def run(**inputs):
        defaults = {
            'code': pacemaker_code,
            'training_sets': {'all': merged},
            'min_structures': orm.Int(10),
            'settings': orm.Dict(TINY_SETTINGS),
            'options': orm.Dict(FIT_OPTIONS),
        }
        return run_get_node(PacemakerTrainingWorkChain, **{**defaults, **inputs})[1]

    run.merged = merged
    return run


@pytest.fixture(scope='session')
def tiny_fit(pacemaker_code, cu_al_sets):
    """One real tiny pacemaker fit through ``run()``, shared by the integration tests."""
    return fit_cu_al(pacemaker_code, cu_al_sets)


@pytest.fixture
def generate_calc_job(tmp_path):
    """Run ``prepare_for_submission`` of a calculation in a sandbox; return ``(folder path, calc_info)``."""

    def factory(process_class, inputs):
        from aiida.common.folders import Folder
        from aiida.engine.utils import instantiate_process
        from aiida.manage import get_manager

        process = instantiate_process(get_manager().get_runner(), process_class, **inputs)
        (tmp_path / 'sandbox').mkdir()
        folder = Folder(str(tmp_path / 'sandbox'))
        calc_info = process.prepare_for_submission(folder)
        return pathlib.Path(folder.abspath), calc_info

    return factory


@pytest.fixture
def parse_fixture(generate_calc_job_node, generate_parser):
    """Parse a retrieved-files fixture folder (``tests/parsers/fixtures/<calculation>/<name>``, or any folder given
    as a path) with the parser of ``entry_point`` (pacemaker's by default); ``files``: what the calculation wrote at
    submission (its repository). Returns ``(outputs, calcfunction node)``."""

    def factory(
        name: str | pathlib.Path, files: dict[str, str] | None = None, entry_point: str = 'mlip_autopipe.pacemaker'
    ):
        node = generate_calc_job_node(entry_point, name, files=files)
        return generate_parser(entry_point).parse_from_node(node, store_provenance=False)

    return factory


FREEZING_PACEMAKER = r'''#!{python}
"""pacemaker, frozen once a fit from scratch has logged iteration {after}; continuations (-p/-ip) run unchanged.

A stand-in for a fit too long for its walltime, stopped after it made progress whatever this machine's speed: once
frozen (with a complete interim potential), the stop is triggered (`on_freeze`); the job is then killed from outside.
"""
import os, pathlib, re, signal, subprocess, sys, time

import yaml

PACEMAKER, AFTER = {pacemaker!r}, {after}
arguments = sys.argv[1:]
if '-p' in arguments or '-ip' in arguments:
    os.execv(PACEMAKER, [PACEMAKER, *arguments])
{before}
process = subprocess.Popen([PACEMAKER, *arguments])


def stop(signum, frame):  # the job is killed (core.direct: SIGTERM to each process): a frozen pacemaker with it
    process.kill()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, stop)


def logged() -> bool:
    try:
        rows = [row.split() for row in pathlib.Path('metrics.txt').read_text().splitlines()[1:]]
    except OSError:
        return False
    return any(len(row) > 2 and row[2].isdigit() and int(row[2]) >= AFTER for row in rows)


def interim_complete() -> bool:
    """The interim potential holds every function pacemaker logged (a file frozen mid-write is cut off: the
    workflow would then refuse to continue from it and run the fit again from the start)."""
    try:
        logged = re.findall(r'Total number of functions: (\d+)', pathlib.Path('log.txt').read_text())
        species = yaml.safe_load(pathlib.Path('interim_potential_0.yaml').read_text())['species']
        return bool(logged) and sum(len(block.get('nbody') or []) for block in species) == int(logged[-1])
    except Exception:
        return False


while True:
    while process.poll() is None and not logged():
        time.sleep(0.1)
    if process.poll() is not None:
        sys.exit(process.returncode)
    process.send_signal(signal.SIGSTOP)
    if interim_complete():
        break
    process.send_signal(signal.SIGCONT)  # frozen while rewriting the interim potential: a moment later
    time.sleep(0.05)
{on_freeze}
parent = os.getppid()
while os.getppid() == parent:  # until the job is killed (or only its script: then this process is re-parented)
    time.sleep(0.2)
process.kill()
'''


@pytest.fixture
def freezing_pacemaker():
    """Return the text of a pacemaker wrapper that freezes a fit from scratch after iteration ``after``.

    ``python``: the pacemaker installation's interpreter (the calculation takes the job's Python from the
    executable's shebang); ``before``/``on_freeze``: Python lines run at the start and once the fit is frozen (e.g.
    date the job's start back for the walltime monitor, or shorten the Slurm job's time limit).
    """

    def factory(python: str, pacemaker: str, after: int, on_freeze: str, before: str = '') -> str:
        return FREEZING_PACEMAKER.format(
            python=python, pacemaker=pacemaker, after=after, on_freeze=on_freeze, before=before
        )

    return factory


@pytest.fixture
def fixture_code(session_localhost):
    """Return an ``InstalledCode`` for a calculation entry point (its executable is never run)."""

    def factory(entry_point_name: str):
        from aiida import orm

        return orm.InstalledCode(
            label=f'fixture-{entry_point_name}',
            computer=session_localhost,
            filepath_executable='/bin/true',
            default_calc_job_plugin=entry_point_name,
        ).store()

    return factory


@pytest.fixture
def generate_calc_job_node(fixture_code):
    """Return a stored ``CalcJobNode`` of a calculation entry point whose ``retrieved`` output holds a fixture folder.

    As aiida-quantumespresso's fixture: ``generate_calc_job_node('mlip_autopipe.pacemaker', 'success_maxiter')``
    takes the retrieved files from ``tests/parsers/fixtures/pacemaker/success_maxiter`` (``test_name`` may also be
    a folder path); ``inputs`` (nodes) are linked as the calculation's inputs; ``files`` (name: text) are put in the
    calculation's repository, as the files it wrote at submission.
    """

    def factory(
        entry_point_name: str,
        test_name: str | pathlib.Path | None = None,
        inputs: dict | None = None,
        files: dict[str, str] | None = None,
    ):
        from aiida import orm
        from aiida.common import LinkType
        from aiida.plugins import CalculationFactory
        from aiida.plugins.entry_point import format_entry_point_string

        code = fixture_code(entry_point_name)
        node = orm.CalcJobNode(
            computer=code.computer, process_type=format_entry_point_string('aiida.calculations', entry_point_name)
        )
        node.set_process_label(CalculationFactory(entry_point_name).__name__)
        node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
        node.set_option('max_wallclock_seconds', 1800)
        node.set_option('parser_name', entry_point_name)
        node.base.links.add_incoming(code, link_type=LinkType.INPUT_CALC, link_label='code')
        for label, value in (inputs or {}).items():
            value.store()
            node.base.links.add_incoming(value, link_type=LinkType.INPUT_CALC, link_label=label)
        for name, content in (files or {}).items():  # files the calculation wrote at submission (its repository)
            node.base.repository.put_object_from_bytes(content.encode(), name)
        node.store()
        if test_name is not None:
            folder = (
                test_name
                if isinstance(test_name, pathlib.Path)
                else FIXTURES / entry_point_name.removeprefix('mlip_autopipe.') / test_name
            )
            retrieved = orm.FolderData(tree=folder)
            retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='retrieved')
            retrieved.store()
        return node

    return factory


@pytest.fixture
def generate_parser():
    """Return the parser class of an entry point (``generate_parser('mlip_autopipe.pacemaker')``)."""

    def factory(entry_point_name: str):
        from aiida.plugins import ParserFactory

        return ParserFactory(entry_point_name)

    return factory


@pytest.fixture
def generate_workchain():
    """Return a workflow instantiated (not run) from its entry point and inputs, as aiida-quantumespresso's."""

    def factory(entry_point_name: str, inputs: dict):
        from aiida.engine.utils import instantiate_process
        from aiida.manage.manager import get_manager
        from aiida.plugins import WorkflowFactory

        return instantiate_process(get_manager().get_runner(), WorkflowFactory(entry_point_name), **inputs)

    return factory


@pytest.fixture(autouse=True)
def cli_logging_restored():
    """A verdi-style command configures aiida's logging for the command line (no database log handler); in a real
    shell the process ends there, here the test process goes on and its processes must report to the database (a
    test after a CLI test reads the reports of its processes)."""
    yield
    from aiida.common import log
    from aiida.manage import get_manager

    if get_manager().get_profile() is not None:
        log.CLI_ACTIVE, log.CLI_LOG_LEVEL = None, None
        log.configure_logging(with_orm=True)
