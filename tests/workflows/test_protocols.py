"""Protocols: ``get_builder_from_protocol`` fills valid inputs; overrides merge; unknown names are refused."""

import pytest

from aiida_mlip_autopipe.calculations.settings import PacemakerSettings
from aiida_mlip_autopipe.data.training_set import TrainingSetData
from aiida_mlip_autopipe.demo.emt import emt_structures
from aiida_mlip_autopipe.workflows.protocols import load_protocol, recursive_merge
from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain

PROTOCOLS = ('fast', 'moderate', 'precise')


def test_the_three_protocols_are_available_with_descriptions():
    available = PacemakerTrainingWorkChain.get_available_protocols()
    assert set(available) == set(PROTOCOLS)
    assert all(len(entry['description']) > 40 for entry in available.values())
    assert PacemakerTrainingWorkChain.get_default_protocol() == 'moderate'


@pytest.mark.parametrize('protocol', PROTOCOLS)
def test_each_protocol_builds_inputs_the_workflow_accepts(fake_code, aiida_profile, protocol):
    data = TrainingSetData.from_atoms(emt_structures(3, seed=6)).store()
    builder = PacemakerTrainingWorkChain.get_builder_from_protocol(fake_code, protocol, training_sets={'data': data})
    settings = builder.settings.get_dict()
    PacemakerSettings.model_validate(settings)  # every key is one pacemaker reads
    assert settings == load_protocol(protocol)['settings']
    assert PacemakerTrainingWorkChain.spec().inputs.validate(builder._inputs(prune=True)) is None


def test_protocols_grow_from_fast_to_precise():
    settings = [load_protocol(name)['settings'] for name in PROTOCOLS]
    sizes = [entry['potential']['functions']['number_of_functions_per_element'] for entry in settings]
    iterations = [entry['fit']['maxiter'] for entry in settings]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
    assert iterations == sorted(iterations) and len(set(iterations)) == 3


def test_overrides_merge_key_by_key(fake_code, aiida_profile):
    builder = PacemakerTrainingWorkChain.get_builder_from_protocol(
        fake_code,
        'fast',
        overrides={'test_fraction': 0.25, 'base': {'max_iterations': 7}, 'settings': {'fit': {'maxiter': 9}}},
        group='some-group',
        options={'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 3}},
    )
    fit = builder.settings.get_dict()['fit']
    assert fit['maxiter'] == 9 and fit['loss']['kappa'] == 0.3  # the rest of the protocol's fit section stays
    assert builder.test_fraction.value == 0.25 and builder.base.max_iterations.value == 7
    assert builder.group.value == 'some-group'
    assert builder.options['resources']['num_mpiprocs_per_machine'] == 3
    assert recursive_merge({'a': {'b': 1, 'c': 2}}, {'a': {'b': 3}, 'd': [1]}) == {'a': {'b': 3, 'c': 2}, 'd': [1]}


def test_an_unknown_protocol_names_the_choices(fake_code, aiida_profile):
    with pytest.raises(ValueError, match="unknown protocol 'quick': choose one of fast, moderate, precise"):
        PacemakerTrainingWorkChain.get_builder_from_protocol(fake_code, 'quick', group='x')
