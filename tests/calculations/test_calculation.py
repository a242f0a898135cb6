"""PacemakerCalculation: the sandbox it writes, its command lines, and the errors raised before submission."""

import io
import json
import pathlib

import pytest
import yaml
from aiida import orm

from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation
from aiida_mlip_autopipe.data.training_set import TrainingSetData
from aiida_mlip_autopipe.demo.emt import emt_structures

#: A B-basis potential pacemaker wrote (Cu).
BBASIS = (
    pathlib.Path(__file__).resolve().parents[1] / 'parsers/fixtures/pacemaker/success_maxiter/output_potential.yaml'
)


def bbasis_potential() -> orm.SinglefileData:
    return orm.SinglefileData(io.BytesIO(BBASIS.read_bytes()), filename='potential.yaml')


def inputs_for(code, training_set, **extra):
    inputs = {
        'code': code,
        'training_set': training_set,
        'metadata': {'options': {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 2}}},
    }
    inputs.update(extra)
    return inputs


def test_sandbox_files_commands_and_retrieve_list(generate_calc_job, fake_code, cu_set):
    settings = orm.Dict({'fit': {'maxiter': 7}, 'data': {'test_size': 1}})
    folder, calc_info = generate_calc_job(PacemakerCalculation, inputs_for(fake_code, cu_set, settings=settings))
    assert sorted(p.name for p in folder.iterdir()) == ['aiida_settings_record.json', 'input.yaml', 'pacemaker_io.py']
    document = yaml.safe_load((folder / 'input.yaml').read_text())
    record = json.loads((folder / 'aiida_settings_record.json').read_text())  # what the parser puts in the metrics
    assert record['settings_used'] == document
    assert record['settings_filled']['fit.loss.kappa'] == document['fit']['loss']['kappa'] == 0.3
    assert record['settings_filled']['potential.elements'] == ['Cu']
    assert record['reference_energy_source'] and record['reference_energy_reason']
    assert document['fit']['maxiter'] == 7
    assert document['data'] == {'test_size': 1, 'filename': 'training_data.pckl.gzip'}
    assert document['potential']['elements'] == ['Cu']
    assert 'backend' in document and 'potential' in document
    assert calc_info.local_copy_list == [(cu_set.uuid, 'structures.npz', 'training_set.npz')]
    (code_info,) = calc_info.codes_info
    assert code_info.cmdline_params == ['input.yaml', '-o', 'output_potential.yaml', '-l', 'log.txt']
    assert code_info.stdout_name == 'pacemaker.out' and code_info.stderr_name == 'pacemaker.err'
    for name in (
        'log.txt',
        'metrics.txt',
        'test_metrics.txt',
        'output_potential.yaml',
        'output_potential.yace',
        'interim_potential_0.yaml',
        'train_predictions.npz',
        'fitting_data_info.pckl.gzip',
    ):
        assert name in calc_info.retrieve_list
    # the sibling tools and the interpreter come from the directory of the code's executable
    assert "PACEMAKER_BIN_DIR='/opt/pace env/bin'" in calc_info.prepend_text
    assert "head -n 1 '/opt/pace env/bin/pacemaker'" in calc_info.prepend_text
    assert 'pacemaker_io.py to-dataframe training_set.npz training_data.pckl.gzip' in calc_info.prepend_text
    assert '"$PACEMAKER_BIN_DIR/pace_yaml2yace" -o output_potential.yace output_potential.yaml' in calc_info.append_text
    assert calc_info.append_text.startswith('echo "$?" > aiida_pacemaker.status')
    # threads follow the job's resources unless already set
    assert 'export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"' in calc_info.prepend_text
    assert 'export TF_NUM_INTRAOP_THREADS="${TF_NUM_INTRAOP_THREADS:-2}"' in calc_info.prepend_text
    # the interpreter path is quoted wherever it is used (an installation path may contain spaces)
    assert calc_info.prepend_text.count('"$PACEMAKER_PYTHON" pacemaker_io.py') == 1
    assert '$PACEMAKER_PYTHON pacemaker_io.py' not in calc_info.prepend_text + calc_info.append_text
    # the job writes its start on its own clock first, for the walltime monitor
    assert calc_info.prepend_text.splitlines()[0].startswith('date +%s > aiida_job_started')


def test_one_interpreter_start_per_conversion(generate_calc_job, fake_code, cu_set, tmp_path):
    """Both data sets in one ``to-dataframe`` call, both prediction files in one ``predictions`` call (each
    interpreter start imports pandas: ~0.7 s); the job script runs them for real on files of the right shape."""
    import subprocess
    import sys

    from aiida_mlip_autopipe.jobscripts import pacemaker_io

    test_set = TrainingSetData.from_atoms(emt_structures(2, elements=('Cu',), seed=6)).store()
    _, calc_info = generate_calc_job(PacemakerCalculation, inputs_for(fake_code, cu_set, test_set=test_set))
    assert calc_info.prepend_text.count('pacemaker_io.py') == 1
    assert (
        'pacemaker_io.py to-dataframe training_set.npz training_data.pckl.gzip test_set.npz test_data.pckl.gzip'
        in calc_info.prepend_text
    )
    assert calc_info.append_text.count('pacemaker_io.py') == 1
    script = pacemaker_io.__file__
    for name, node in (('training_set.npz', cu_set), ('test_set.npz', test_set)):
        (tmp_path / name).write_bytes(node.base.repository.get_object_content('structures.npz', mode='rb'))
    pairs = ['training_set.npz', 'train.pckl.gzip', 'test_set.npz', 'test.pckl.gzip']
    result = subprocess.run(
        [sys.executable, script, 'to-dataframe', *pairs], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('structures') == 2 and (tmp_path / 'test.pckl.gzip').is_file()
    odd = subprocess.run([sys.executable, script, 'to-dataframe', 'a.npz'], capture_output=True, text=True, check=False)
    assert odd.returncode == 2 and 'SOURCE TARGET [SOURCE TARGET ...]' in odd.stderr


def test_threads_come_from_the_computer_default(generate_calc_job, fake_code, cu_set, tmp_path):
    """Without num_mpiprocs_per_machine the computer's default sets the threads; without both: a clear error."""

    fake_code.computer.set_default_mpiprocs_per_machine(3)
    try:
        _, calc_info = generate_calc_job(PacemakerCalculation, {'code': fake_code, 'training_set': cu_set})
        assert 'export OMP_NUM_THREADS="${OMP_NUM_THREADS:-3}"' in calc_info.prepend_text
        computer = orm.Computer(
            label='no-default', hostname='localhost', transport_type='core.local', scheduler_type='core.direct'
        ).store()
        code = orm.InstalledCode(computer=computer, filepath_executable='/opt/p/bin/pacemaker').store()
        with pytest.raises(ValueError, match=r'how many threads.*computer .no-default.'):
            generate_calc_job(PacemakerCalculation, {'code': code, 'training_set': cu_set})
    finally:
        fake_code.computer.set_default_mpiprocs_per_machine(1)


def test_test_set_and_initial_potential(generate_calc_job, fake_code, cu_set):
    potential = bbasis_potential()
    folder, calc_info = generate_calc_job(
        PacemakerCalculation, inputs_for(fake_code, cu_set, test_set=cu_set, initial_potential=potential)
    )
    document = yaml.safe_load((folder / 'input.yaml').read_text())
    assert document['data']['test_filename'] == 'test_data.pckl.gzip'
    assert (cu_set.uuid, 'structures.npz', 'test_set.npz') in calc_info.local_copy_list
    assert (potential.uuid, 'potential.yaml', 'initial_potential.yaml') in calc_info.local_copy_list
    assert calc_info.codes_info[0].cmdline_params[-2:] == ['-p', 'initial_potential.yaml']
    assert 'test_set.npz test_data.pckl.gzip' in calc_info.prepend_text


def test_ladder_fitting_continues_with_ip(generate_calc_job, fake_code, cu_set):
    potential = bbasis_potential()
    settings = orm.Dict({'fit': {'ladder_step': 10}})
    _, calc_info = generate_calc_job(
        PacemakerCalculation, inputs_for(fake_code, cu_set, initial_potential=potential, settings=settings)
    )
    assert calc_info.codes_info[0].cmdline_params[-2:] == ['-ip', 'initial_potential.yaml']


def test_user_template_is_rendered(generate_calc_job, fake_code, cu_set):
    template = orm.SinglefileData(
        io.BytesIO(
            b'# my lab template\nseed: 3\npotential: {{ potential | yaml }}\ndata: {{ data | yaml }}\n'
            b'{% if fit is defined %}fit: {{ fit | yaml }}{% endif %}\n'
            b'backend: {"evaluator": "tensorpot", "batch_size": 20, "display_step": 5}\n'
        ),
        filename='input.yaml.j2',
    )
    folder, _ = generate_calc_job(PacemakerCalculation, inputs_for(fake_code, cu_set, template=template))
    text = (folder / 'input.yaml').read_text()
    assert text.startswith('# my lab template')
    assert yaml.safe_load(text)['backend']['batch_size'] == 20


def run_validation(code, training_set, **extra):
    """Return the validation error (or None) that the process spec gives for these inputs."""
    result = PacemakerCalculation.spec().inputs.validate(inputs_for(code, training_set, **extra))
    return None if result is None else result.message


def template(text: bytes):
    return {'template': orm.SinglefileData(io.BytesIO(text), filename='t.j2')}


@pytest.mark.parametrize(
    ('make_extra', 'fragment'),
    [
        (lambda: {'settings': {'fit': {'loss': {'kapa': 0.1}}}}, 'fit.loss.kapa: Extra inputs are not permitted'),
        (lambda: {'settings': {'fit': {'maxiterr': 3}}}, 'fit.maxiterr: Extra inputs are not permitted'),
        (lambda: {'settings': {'fit': {'maxiter': -3}}}, 'fit.maxiter: Input should be greater than 0'),
        (lambda: {'settings': {'potential': {'elements': ['Al']}}}, "potential.elements=['Al'] does not match"),
        (lambda: {'settings': {'potential': {'elements': ['Cu', 'Al']}}}, 'does not match the elements'),
        (lambda: {'settings': {'loss_weights': {'stress': 1.0}}}, 'pacemaker cannot fit stress'),
        (lambda: {'settings': {'data': {'filename': 'mine.pckl'}}}, 'use the `training_set` input'),
        (lambda: {'settings': {'data': {'test_size': 0.1}}, 'test_set': 'same'}, 'not both'),
        (lambda: {'settings': {'data': {'test_size': 50}}}, 'data.test_size=50 takes 50 test structure(s) of the 3'),
        (lambda: {'settings': {'data': {'test_size': 0.1}}}, 'test_size=0.1 takes 0 test structure(s) of the 3'),
        (lambda: {'settings': {'potential': {'bonds': {'CuNi': {'rcut': 5.0}}}}}, 'names Ni, which is not among'),
        (lambda: {'settings': {'seed': -1}}, 'seed: Input should be greater than or equal to 0'),
        (lambda: {'settings': {'fit': {'maxiter': True}}}, 'fit.maxiter: Input should be a valid integer'),
        (lambda: {'settings': {'potential': {'bonds': {'ALL': {'radparameters': []}}}}}, 'at least 1 item'),
        (lambda: {'settings': {'potential': {'deltaSplineBins': 1e-300}}}, 'greater than or equal to 0.00001'),
        (lambda: {'initial_potential': orm.SinglefileData(io.BytesIO(b'x'), filename='old.yace')}, 'is a .yace'),
        (lambda: template(b'seed: {{ sed | yaml }}\n'), "'sed' is undefined"),
        (
            lambda: template(
                b'potential: {{ potential | yaml }}\ndata: {"filename": "other.pckl"}\n'
                b'fit: {}\nbackend: {{ backend | yaml }}\n'
            ),
            'data.filename',
        ),
        (
            lambda: template(
                b'potential: {{ potential | yaml }}\ndata: {{ data | yaml }}\nfit: {maxiterr: 4}\n'
                b'backend: {{ backend | yaml }}\n'
            ),
            'fit.maxiterr',
        ),
    ],
)
def test_bad_inputs_are_refused_before_submission(fake_code, cu_set, make_extra, fragment):
    extra = make_extra()
    if 'settings' in extra:
        extra['settings'] = orm.Dict(extra['settings'])
    if extra.get('test_set') == 'same':
        extra['test_set'] = cu_set
    message = run_validation(fake_code, cu_set, **extra)
    assert message is not None and fragment in message, message


def test_data_without_forces_is_refused(fake_code, aiida_profile):
    from ase.build import bulk

    atoms = bulk('Cu')
    atoms.info['energy'] = -3.0
    message = run_validation(fake_code, TrainingSetData.from_atoms([atoms]).store())
    assert 'have no forces' in message


def test_valid_inputs_pass(fake_code, cu_set):
    assert run_validation(fake_code, cu_set, settings=orm.Dict({'fit': {'maxiter': 3}})) is None


def test_empty_training_set_is_refused(fake_code, aiida_profile):
    empty = TrainingSetData.from_atoms([]).store()
    assert len(empty) == 0
    assert 'the training_set is empty' in run_validation(fake_code, empty)


def test_refused_inputs_store_nothing(fake_code, cu_set):
    from aiida.engine import run

    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(ValueError, match=r'fit\.loss\.kapa: Extra inputs are not permitted'):
        settings = orm.Dict({'fit': {'loss': {'kapa': 1}}})
        run(PacemakerCalculation, code=fake_code, training_set=cu_set, settings=settings)
    assert orm.QueryBuilder().append(orm.Node).count() == before


@pytest.mark.parametrize('kind', ['missing', 'not executable'])
def test_missing_or_non_executable_pacemaker_gives_a_named_exit_code(session_localhost, cu_set, tmp_path, kind):
    from aiida.engine import run_get_node

    executable = tmp_path / 'bin' / 'pacemaker'
    if kind == 'not executable':
        executable.parent.mkdir()
        executable.write_text('#!/bin/sh\n')
        executable.chmod(0o644)
    code = orm.InstalledCode(label=kind, computer=session_localhost, filepath_executable=str(executable)).store()
    _, node = run_get_node(PacemakerCalculation, code=code, training_set=cu_set)
    assert node.exit_status == 402
    expected = f'the pacemaker executable {executable} does not exist or is not executable on the computer'
    assert node.exit_message == expected


@pytest.mark.parametrize(
    ('content', 'fragment'),
    [
        (b'a: 1\n', 'is not a B-basis potential (it needs the blocks global and species'),
        (b'species: []\n', 'it has: species'),
        (b'- 1\n- 2\n', 'it has: list'),
        (b'global: {}\nspecies: [{speciesblock: 1}]\n', 'is not a B-basis potential'),
        (b'potential: [\n', 'is not readable YAML'),
    ],
)
def test_initial_potential_that_is_not_a_bbasis_is_refused(fake_code, cu_set, content, fragment):
    """Defect 8 of issue 20: any .yaml passed; pacemaker failed after start-up (exit 410, "bad conversion")."""
    potential = orm.SinglefileData(io.BytesIO(content), filename='old.yaml')
    message = run_validation(fake_code, cu_set, initial_potential=potential)
    assert message is not None and fragment in message, message
    assert '\n' not in message


def test_a_bbasis_initial_potential_passes(fake_code, cu_set):
    assert run_validation(fake_code, cu_set, initial_potential=bbasis_potential()) is None


NO_FIT_TEMPLATE = b'potential: {{ potential | yaml }}\ndata: {{ data | yaml }}\nbackend: {{ backend | yaml }}\n'
PADDED_TEMPLATE = NO_FIT_TEMPLATE + b'fit:\n  maxiter: 010\n'


@pytest.mark.parametrize(
    ('text', 'fit'),
    [(NO_FIT_TEMPLATE, None), (PADDED_TEMPLATE, {'maxiter': 10})],
)
def test_the_settings_used_are_what_pacemaker_reads_from_the_template(generate_calc_job, fake_code, cu_set, text, fit):
    """Defect 3 of issue 20: a template without a fit line (or with maxiter: 010) overrides the settings; the record
    is the rendered file as pacemaker reads it (no fit: its defaults; 010 is 10, not PyYAML's 8)."""
    settings = orm.Dict({'fit': {'maxiter': 50, 'loss': {'kappa': 0.9}}})
    folder, _ = generate_calc_job(
        PacemakerCalculation, inputs_for(fake_code, cu_set, settings=settings, **template(text))
    )
    used = PacemakerCalculation.settings_read((folder / 'input.yaml').read_text())
    assert used.get('fit') == fit
    assert used['potential']['elements'] == ['Cu']


def test_settings_used_apply_the_command_line_as_pacemaker_does():
    """``-p FILE`` replaces the potential section (pacemaker ignores the one in input.yaml); ``-ip`` sets
    potential.initial_potential."""
    text = 'potential: {elements: [Cu]}\ndata: {filename: a}\nbackend: {}\n'
    assert PacemakerCalculation.settings_read(text, True)['potential'] == 'initial_potential.yaml'
    ladder = text + 'fit: {ladder_step: 5}\n'
    used = PacemakerCalculation.settings_read(ladder, True)
    assert used['potential'] == {'elements': ['Cu'], 'initial_potential': 'initial_potential.yaml'}


@pytest.mark.pacemaker
def test_a_template_override_is_recorded_as_pacemaker_ran_it(pacemaker_code, cu_set):
    """Defect 3 of issue 20, end to end: settings say maxiter 50 and kappa 0.9, the template writes ``maxiter: 03``
    and no loss. Pacemaker runs 3 iterations with kappa 0; ``metrics.settings_used`` says so."""
    from aiida.engine import run_get_node

    text = b'potential: {{ potential | yaml }}\ndata: {{ data | yaml }}\nbackend: {{ backend | yaml }}\n'
    text += b'fit:\n  maxiter: 03\n'
    settings = {'fit': {'maxiter': 50, 'loss': {'kappa': 0.9}}, 'potential': {'functions': {}}}
    settings['potential']['functions']['number_of_functions_per_element'] = 3
    inputs = inputs_for(pacemaker_code, cu_set, settings=orm.Dict(settings), **template(text))
    _, node = run_get_node(PacemakerCalculation, **inputs)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    metrics = node.outputs.metrics.get_dict()
    assert metrics['iterations'] == 3
    assert metrics['settings_used']['fit'] == {'maxiter': 3}
    assert metrics['settings_used']['potential']['functions']['number_of_functions_per_element'] == 3
    assert 'potential.elements' in metrics['settings_filled']
    log = ' '.join(entry.message for entry in orm.Log.collection.get_logs_for(node))
    assert 'fit.loss: settings' in log and 'file absent (pacemaker default)' in log


CU_POTENTIAL = pathlib.Path(__file__).parent.parent / 'parsers/fixtures/pacemaker/success_reference_energy'


def cu_potential():
    """A Cu-only B-basis YAML potential (metadata reference_energy {"Cu": -3.5, "shift": 0.25})."""
    text = (CU_POTENTIAL / 'output_potential.yaml').read_bytes()
    return orm.SinglefileData(io.BytesIO(text), filename='cu.yaml')


@pytest.fixture(scope='module')
def cu_al_set(aiida_profile):
    return TrainingSetData.from_atoms(emt_structures(3, elements=('Cu', 'Al'), seed=6)).store()


def test_an_initial_potential_of_other_elements_is_refused(fake_code, cu_al_set, cu_set):
    """A Cu-only potential continued on Al-Cu data: refused at validation, in one line, for the calculation and
    the training workflow (pacemaker would fit a Cu-only potential that cannot evaluate its own training data)."""
    from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain

    message = run_validation(fake_code, cu_al_set, initial_potential=cu_potential())
    assert message == (
        "initial_potential 'cu.yaml' has the elements ['Cu'], the data ['Al', 'Cu']: continue a potential of "
        "exactly the data's elements, or fit from scratch"
    )
    assert run_validation(fake_code, cu_set, initial_potential=cu_potential()) is None  # the same elements pass
    workflow_inputs = {
        'code': fake_code,
        'training_sets': {'a': cu_al_set},
        'options': orm.Dict({'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}}),
        'base': {'pacemaker': {'initial_potential': cu_potential()}},
    }
    result = PacemakerTrainingWorkChain.spec().inputs.validate(workflow_inputs)
    assert result is not None and "has the elements ['Cu'], the data ['Al', 'Cu']" in result.message


def test_the_reference_energy_used_is_said_and_written(generate_calc_job, fake_code, cu_set):
    """With a test set, the reference comes from the training set and is written into input.yaml; an initial
    potential's reference is pacemaker's choice when the settings give none, and the report says so."""
    folder, _ = generate_calc_job(PacemakerCalculation, inputs_for(fake_code, cu_set, test_set=cu_set))
    assert yaml.safe_load((folder / 'input.yaml').read_text())['data']['reference_energy'] == {'Cu': 0.0}

    shifted = cu_set.get_arrays() | {'energy': cu_set.get_arrays()['energy'] - 100.0}
    absolute = TrainingSetData.from_arrays(**shifted).store()
    (tmp := folder.parent / 'second').mkdir()
    from aiida_mlip_autopipe.potentials.reference_energy import auto_reference

    process_inputs = inputs_for(fake_code, absolute, test_set=cu_set)
    from aiida.common.folders import Folder
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager

    process = instantiate_process(get_manager().get_runner(), PacemakerCalculation, **process_inputs)
    process.prepare_for_submission(Folder(str(tmp)))
    written = yaml.safe_load((tmp / 'input.yaml').read_text())['data']['reference_energy']
    assert written == pytest.approx(auto_reference(absolute.get_arrays()))
    assert written['Cu'] < -20

    process = instantiate_process(
        get_manager().get_runner(),
        PacemakerCalculation,
        **inputs_for(fake_code, absolute, test_set=cu_set, initial_potential=cu_potential()),
    )
    (third := folder.parent / 'third').mkdir()
    process.prepare_for_submission(Folder(str(third)))
    assert 'reference_energy' not in yaml.safe_load((third / 'input.yaml').read_text())['data']
    reports = [log.message for log in orm.Log.collection.get_logs_for(process.node)]
    assert any(
        "reference energy (initial_potential): the initial potential's metadata reference_energy" in message
        for message in reports
    ), reports


def test_a_reference_energy_from_the_template_is_reported_as_such(fake_code, cu_set, tmp_path):
    from aiida.common.folders import Folder
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager

    text = (
        b'potential: {{ potential | yaml }}\n'
        b'data: {"filename": "training_data.pckl.gzip", "reference_energy": {"Cu": -1.5}}\n'
        b'backend: {{ backend | yaml }}\n'
    )
    process = instantiate_process(
        get_manager().get_runner(), PacemakerCalculation, **inputs_for(fake_code, cu_set, **template(text))
    )
    process.prepare_for_submission(Folder(str(tmp_path)))
    reports = [log.message for log in orm.Log.collection.get_logs_for(process.node)]
    assert any("reference energy (template): data.reference_energy={'Cu': -1.5}" in message for message in reports)


@pytest.mark.parametrize('protocol', [None, 'fast', 'moderate', 'precise'])
def test_rendered_input_yaml(generate_calc_job, fake_code, cu_set, file_regression, protocol):
    """The input.yaml written for the settings a user starts from (none, or a protocol's), against the stored file
    beside this module (``test_calculation/``; ``pytest --force-regen`` to accept a deliberate change)."""
    from aiida_mlip_autopipe import __version__
    from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain

    extra = {}
    if protocol is not None:
        extra['settings'] = orm.Dict(PacemakerTrainingWorkChain.get_protocol_inputs(protocol)['settings'])
    folder, _ = generate_calc_job(PacemakerCalculation, inputs_for(fake_code, cu_set, **extra))
    text = (
        (folder / 'input.yaml').read_text().replace(f'aiida-mlip-autopipe {__version__}', 'aiida-mlip-autopipe VERSION')
    )
    file_regression.check(text, extension='.yaml')
