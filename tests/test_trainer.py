"""The seed's façade: TrainingConfig validation, a real train() returning a .yace path, TrainingError."""

import os
import pathlib

import pytest
from ase.db import connect
from pydantic import ValidationError

from aiida_mlip_autopipe import LossWeights, PacemakerTrainer, TrainingConfig, TrainingError
from aiida_mlip_autopipe.demo.emt import emt_structures
from tests.helpers import TINY_SETTINGS, ase_database, node_count


@pytest.fixture(scope='module')
def database(tmp_path_factory):
    return ase_database(tmp_path_factory.mktemp('trainer') / 'dft.db', emt_structures(22, repeat=2, seed=31))


def config(executable, database, tmp_path, **extra) -> TrainingConfig:
    values = {
        'pacemaker_executable': executable,
        'data_source_db': database,
        'delta_learning': False,
        'min_structures': 20,
        'settings': TINY_SETTINGS,
        'output_dir': tmp_path / 'potentials',
        'computer': 'session-localhost',
        'num_threads': os.cpu_count(),
    }
    values.update(extra)
    return TrainingConfig(**values)


def test_config_validation(pacemaker_executable, database, tmp_path):
    with pytest.raises(ValidationError, match='unknown_field'):
        TrainingConfig(pacemaker_executable=pacemaker_executable, data_source_db=database, unknown_field=1)
    with pytest.raises(ValidationError, match='pacemaker cannot fit stress'):
        config(pacemaker_executable, database, tmp_path, loss_weights=LossWeights(stress=0.5))
    with pytest.raises(ValidationError, match=r'either loss_weights or fit.loss.kappa'):
        config(
            pacemaker_executable,
            database,
            tmp_path,
            loss_weights=LossWeights(),
            settings={'fit': {'loss': {'kappa': 0.5}}},
        )
    kappa_only = config(pacemaker_executable, database, tmp_path, settings={'fit': {'loss': {'kappa': 0.5}}})
    assert kappa_only.pacemaker_settings().kappa == 0.5  # the default LossWeights does not count as given
    with pytest.raises(ValidationError, match=r'fit.maxiterr'):
        config(pacemaker_executable, database, tmp_path, settings={'fit': {'maxiterr': 5}})
    # the executable is a path on the computer that runs pacemaker: kept as given, checked there by train()
    assert TrainingConfig(
        pacemaker_executable='/remote/bin/pacemaker', data_source_db=database
    ).pacemaker_executable == ('/remote/bin/pacemaker')
    with pytest.raises(ValidationError, match='pacemaker_executable'):
        TrainingConfig(pacemaker_executable='', data_source_db=database)
    default = TrainingConfig(pacemaker_executable=pacemaker_executable, data_source_db=database)
    assert default.delta_learning is True and default.template_file is None
    assert default.pacemaker_settings().kappa == pytest.approx(0.3)


def test_delta_learning_options_are_checked(pacemaker_executable, database, tmp_path):
    with pytest.raises(ValidationError, match=r'zbl_inner=3.0 must be smaller than zbl_outer=2.0'):
        config(pacemaker_executable, database, tmp_path, delta_learning=True, zbl_inner=3.0)
    with pytest.raises(ValidationError, match='second ZBL core'):
        config(pacemaker_executable, database, tmp_path, delta_learning=True, settings={'fit': {'repulsion': 'auto'}})
    assert config(pacemaker_executable, database, tmp_path, delta_learning=True).zbl_outer == 2.0


def test_missing_database_raises_training_error(pacemaker_executable, tmp_path, session_localhost):
    trainer = PacemakerTrainer(config(pacemaker_executable, tmp_path / 'nope.db', tmp_path))
    with pytest.raises(TrainingError, match=r'cannot import the training data: .*nope.db: no such file'):
        trainer.train()


def test_what_can_be_checked_fails_before_the_import(pacemaker_executable, database, tmp_path, session_localhost):
    """An output_dir that is a file, an unknown computer, a missing or non-executable pacemaker on the computer, a
    computer that does not say how many threads: a TrainingError before anything is imported."""
    from aiida import orm

    occupied = tmp_path / 'occupied'
    occupied.write_text('not a directory')
    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(TrainingError, match=r'output_dir .*occupied exists and is not a directory'):
        PacemakerTrainer(config(pacemaker_executable, database, tmp_path, output_dir=occupied)).train()
    with pytest.raises(TrainingError, match=r"no AiiDA computer 'nowhere' in this profile"):
        PacemakerTrainer(config(pacemaker_executable, database, tmp_path, computer='nowhere')).train()
    with pytest.raises(
        TrainingError, match=r"pacemaker_executable .*missing does not exist on computer 'session-local"
    ):
        PacemakerTrainer(config(tmp_path / 'missing', database, tmp_path)).train()
    not_executable = tmp_path / 'pacemaker'
    not_executable.write_text('#!/bin/sh\n')
    with pytest.raises(TrainingError, match=r'pacemaker_executable .*pacemaker on computer .* is not executable'):
        PacemakerTrainer(config(not_executable, database, tmp_path)).train()
    no_threads = orm.Computer(
        label='no-default-threads', hostname='localhost', transport_type='core.local', scheduler_type='core.direct'
    ).store()
    no_threads.configure()
    with pytest.raises(TrainingError, match=r"computer 'no-default-threads' has no default number of MPI processes"):
        PacemakerTrainer(
            config(pacemaker_executable, database, tmp_path, computer=no_threads.label, num_threads=None)
        ).train()
    assert orm.QueryBuilder().append(orm.Node).count() == before


@pytest.mark.pacemaker
def test_train_returns_the_path_of_a_working_yace(pacemaker_executable, session_localhost, database, tmp_path):
    from pyace import PyACECalculator

    path = PacemakerTrainer(config(pacemaker_executable, database, tmp_path, potential_filename='cu_al.yace')).train()
    assert path == (tmp_path / 'potentials' / 'cu_al.yace').resolve() and path.is_absolute() and path.is_file()
    atoms = emt_structures(1, repeat=2, seed=5)[0]
    atoms.calc = PyACECalculator(str(path))
    assert abs(atoms.get_potential_energy()) < 1e3


def test_failed_run_raises_training_error_with_the_log_tail(
    pacemaker_executable, session_localhost, database, tmp_path
):
    """A pacemaker that fails (a stand-in script run by the real interpreter) gives TrainingError with its log."""
    bin_dir = tmp_path / 'fake-env' / 'bin'
    bin_dir.mkdir(parents=True)
    interpreter = pacemaker_executable.read_text().splitlines()[0]
    fake = bin_dir / 'pacemaker'
    fake.write_text(
        f'{interpreter}\nimport sys\nopen("log.txt", "w").write("2026-01-01 I - Start pacemaker\\n")\n'
        'sys.stderr.write("Traceback (most recent call last):\\nRuntimeError: simulated pacemaker failure\\n")\n'
        'sys.exit(1)\n'
    )
    fake.chmod(0o755)
    trainer = PacemakerTrainer(config(fake, database, tmp_path))
    with pytest.raises(TrainingError) as info:
        trainer.train()
    error = info.value
    assert error.exit_status == 310  # the training workflow's ERROR_UNRECOVERABLE_FAILURE
    assert '[410 ERROR_PACEMAKER_FAILED] pacemaker exited with status 1' in str(error)
    assert 'RuntimeError: simulated pacemaker failure' in error.log_tail
    assert not list(pathlib.Path(tmp_path / 'potentials').glob('*.yace'))


# -- issue 20: the workflow's own checks before the import; the potential file is never clobbered ------------------


@pytest.fixture(scope='module')
def five_structures(tmp_path_factory):
    path = tmp_path_factory.mktemp('trainer-five') / 'five.db'
    with connect(path) as db:
        for atoms in emt_structures(5, seed=32):
            db.write(atoms)
    return path


@pytest.mark.parametrize(
    ('extra', 'message'),
    [
        ({'split_seed': -1}, 'split_seed=-1 must lie in [0, 2**32)'),
        (
            {'settings': {**TINY_SETTINGS, 'potential': {'elements': ['Cu', 'Ni']}}},
            "potential.elements=['Cu', 'Ni'] does not match the elements of the data ['Al', 'Cu']",
        ),
        ({'test_fraction': 0.95}, 'test_fraction=0.95 leaves no training structure: 5 of the 5 distinct'),
        ({'template': "{% include 'base.yaml.j2' %}\n"}, 'the input.yaml template uses {% include %} (line 1)'),
    ],
    ids=['split-seed', 'elements', 'empty-training-split', 'include'],
)
def test_what_the_workflow_would_refuse_fails_before_the_import(
    pacemaker_executable, five_structures, tmp_path, session_localhost, extra, message
):
    """A ``TrainingError`` in one line, and not one node stored (the file, the import, the data)."""
    import re

    extra = dict(extra)
    if 'template' in extra:
        template = tmp_path / 'input.yaml.j2'
        template.write_text(extra.pop('template'))
        extra['template_file'] = template
    trainer = PacemakerTrainer(config(pacemaker_executable, five_structures, tmp_path, min_structures=1, **extra))
    trainer._code()  # the code node is created once per executable; count what the training would store
    before = node_count()
    with pytest.raises(TrainingError, match=re.escape(message)) as info:
        trainer.train()
    assert '\n' not in str(info.value) and 'nothing was imported' in str(info.value)
    assert node_count() == before


def test_an_existing_potential_file_or_link_is_not_replaced(
    pacemaker_executable, five_structures, tmp_path, session_localhost
):
    """Without ``overwrite=True`` an existing file of the potential's name stops the training before any work; a
    symbolic link is never written through."""
    directory = tmp_path / 'potentials'
    directory.mkdir()
    (directory / 'mine.yace').write_text('the user file')
    outside = tmp_path / 'outside.txt'
    outside.write_text('outside')
    (directory / 'link.yace').symlink_to(outside)
    before = node_count()
    for name, expected in (('mine.yace', 'exists: not replaced'), ('link.yace', 'is a symbolic link')):
        trainer = PacemakerTrainer(config(pacemaker_executable, five_structures, tmp_path, potential_filename=name))
        with pytest.raises(TrainingError, match=f'potential_filename: .*{name} {expected}.*overwrite=True'):
            trainer.train()
    assert node_count() == before
    assert (directory / 'mine.yace').read_text() == 'the user file' and outside.read_text() == 'outside'


def test_too_few_structures_fail_before_the_import(pacemaker_executable, five_structures, tmp_path, session_localhost):
    """``min_structures`` above what the database gives: the workflow's exit 202 came after 15 stored nodes."""
    trainer = PacemakerTrainer(config(pacemaker_executable, five_structures, tmp_path, min_structures=6))
    trainer._code()
    before = node_count()
    with pytest.raises(TrainingError, match=r'gives 5 structure\(s\), at least min_structures=6 are required'):
        trainer.train()
    assert node_count() == before
