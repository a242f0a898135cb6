"""Hostile values never inject YAML keys, shell words or paths outside the work directory."""

import io
import pathlib
import re

import pytest
import yaml
from aiida import orm
from pydantic import ValidationError

from aiida_mlip_autopipe.calculations.input_file import InputFileError, render_input
from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation
from aiida_mlip_autopipe.calculations.settings import PacemakerSettings

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / 'aiida_mlip_autopipe'
HOSTILE = ['Cu\nfit: {maxiter: 1}', 'Cu: x', '$(touch /tmp/pwned)', 'Cu; rm -rf /', '../../etc', '&a', '!!python/none']


@pytest.mark.parametrize('value', HOSTILE)
def test_hostile_element_and_block_names_are_refused(value):
    with pytest.raises(ValidationError, match='not a chemical element symbol'):
        PacemakerSettings(potential={'elements': [value]})
    with pytest.raises(ValidationError, match='block key'):
        PacemakerSettings(potential={'bonds': {value: {}}})
    with pytest.raises(ValidationError):
        PacemakerSettings(metadata={value: 'x'})
    with pytest.raises(ValidationError):
        PacemakerSettings(fit={'options': {value: 1}})
    with pytest.raises(ValidationError):
        PacemakerSettings(potential={'bonds': {'ALL': {'NameOfCutoffFunction': value}}})


@pytest.mark.parametrize('value', HOSTILE)
def test_hostile_reference_energy_keys_and_values(value):
    with pytest.raises(ValidationError):
        PacemakerSettings(data={'reference_energy': {value: 1.0}})
    with pytest.raises(ValidationError):
        PacemakerSettings(data={'reference_energy': value})


def test_template_cannot_reach_python():
    for template in (
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        '{{ cycler.__init__.__globals__.os }}',
        '{{ seed.__class__.__base__.__subclasses__() }}',
    ):
        with pytest.raises(InputFileError, match=r'unsafe|undefined'):
            render_input({'seed': 1}, template=template)


def test_yaml_anchors_and_tags_in_values_stay_strings():
    document = PacemakerSettings(metadata={'a': '&anchor [1, 2]', 'b': '*anchor', 'c': '!!python/object:os.system'})
    text = render_input(document.complete(['Cu'])[0].to_pacemaker_input('d.pckl.gzip'))
    assert yaml.safe_load(text)['metadata'] == {'a': '&anchor [1, 2]', 'b': '*anchor', 'c': '!!python/object:os.system'}


def test_file_names_and_code_paths_cannot_escape_or_inject(generate_calc_job, session_localhost, cu_set):
    code = orm.InstalledCode(
        label='weird', computer=session_localhost, filepath_executable="/opt/p'ace $(touch pwned)/bin/pacemaker"
    ).store()
    bbasis = b'global: {DeltaSplineBins: 0.001}\nspecies: [{speciesblock: Cu}]\n'  # the shape of a B-basis
    potential = orm.SinglefileData(io.BytesIO(bbasis), filename='$(id);..yaml')
    folder, calc_info = generate_calc_job(
        PacemakerCalculation,
        {
            'code': code,
            'training_set': cu_set,
            'initial_potential': potential,
            'metadata': {'options': {'resources': {'num_machines': 1}}},
        },
    )
    # the node's file goes to a fixed name inside the work directory
    assert (potential.uuid, '$(id);..yaml', 'initial_potential.yaml') in calc_info.local_copy_list
    for _, _, target in calc_info.local_copy_list:
        assert '/' not in target and '..' not in target
    assert '$(id)' not in ' '.join(calc_info.codes_info[0].cmdline_params)
    # the code path is quoted wherever the job script uses it
    assert "'/opt/p'\"'\"'ace $(touch pwned)/bin/pacemaker'" in calc_info.prepend_text
    assert re.search(r"\$\(touch pwned\)(?![^']*')", calc_info.prepend_text) is None
    assert sorted(p.name for p in folder.iterdir()) == ['aiida_settings_record.json', 'input.yaml', 'pacemaker_io.py']


def test_no_shell_true_and_no_unsafe_yaml_load():
    for path in PACKAGE.rglob('*.py'):
        text = path.read_text()
        assert 'shell=True' not in text, path
        for match in re.finditer(r'yaml\.load\(([^)]*)\)', text):
            assert 'SafeLoader' in match.group(1), path
        assert 'yaml.unsafe_load' not in text and "typ='unsafe'" not in text, path
