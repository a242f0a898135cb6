"""Settings: defaults, the loss-weight mapping, and a named error for every kind of bad value."""

import pytest
from pydantic import ValidationError

from aiida_mlip_autopipe.config import LossWeights, PacemakerSettings, first_error_location


def error_of(**settings) -> str:
    with pytest.raises(ValidationError) as info:
        PacemakerSettings.model_validate(settings)
    return first_error_location(info.value)


def test_defaults_write_every_section():
    document = PacemakerSettings().with_elements(['Cu']).to_pacemaker_input('data.pckl.gzip')
    assert set(document) == {'seed', 'potential', 'fit', 'backend', 'data'}
    assert document['backend'] == {'evaluator': 'tensorpot', 'batch_size': 100, 'display_step': 20}
    assert document['fit']['loss'] == {'kappa': 0.3, 'L1_coeffs': 1e-8, 'L2_coeffs': 1e-8}
    assert document['fit']['maxiter'] == 100
    assert document['potential']['elements'] == ['Cu']
    assert document['potential']['functions']['number_of_functions_per_element'] == 100
    assert document['data'] == {'filename': 'data.pckl.gzip'}


def test_loss_weights_map_onto_kappa():
    assert LossWeights().to_kappa() == pytest.approx(0.3)
    assert LossWeights(energy=1, forces=3).to_kappa() == pytest.approx(0.75)
    assert LossWeights(energy=0, forces=2).to_kappa() == 1.0
    settings = PacemakerSettings(loss_weights={'energy': 1, 'forces': 1})
    assert settings.to_pacemaker_input('x')['fit']['loss']['kappa'] == 0.5
    assert 'loss_weights' not in settings.to_pacemaker_input('x')


@pytest.mark.parametrize(
    ('settings', 'location', 'fragment'),
    [
        ({'fit': {'loss': {'kapa': 0.5}}}, 'fit.loss.kapa', 'Extra inputs are not permitted'),
        ({'fit': {'maxiterr': 10}}, 'fit.maxiterr', 'Extra inputs are not permitted'),
        ({'potential': {'embedings': {}}}, 'potential.embedings', 'Extra inputs are not permitted'),
        ({'fit': {'maxiter': 0}}, 'fit.maxiter', 'greater than 0'),
        ({'fit': {'loss': {'kappa': 1.5}}}, 'fit.loss.kappa', 'less than or equal to 1'),
        ({'fit': {'loss': {'L1_coeffs': -1}}}, 'fit.loss.L1_coeffs', 'greater than or equal to 0'),
        ({'backend': {'batch_size': -5}}, 'backend.batch_size', 'greater than 0'),
        ({'backend': {'evaluator': 'tensorpotx'}}, 'backend.evaluator', "'tensorpot' or 'pyace'"),
        ({'data': {'test_size': 1.5}}, 'data.test_size', ''),
        ({'potential': {'elements': ['Xx']}}, 'potential.elements', "'Xx' is not a chemical element"),
        ({'potential': {'bonds': {'ALL': {'rcut': -1}}}}, 'potential.bonds.ALL.rcut', 'greater than 0'),
        ({'potential': {'bonds': {'FOO': {}}}}, 'potential.bonds', "block key 'FOO'"),
        (
            {'potential': {'embeddings': {'ALL': {'ndensity': 2, 'fs_parameters': [1, 1]}}}},
            'potential.embeddings.ALL',
            'needs 4',
        ),
        ({'loss_weights': {'energy': -1}}, 'loss_weights.energy', 'greater than or equal to 0'),
        ({'fit': {'loss': {'kappa': float('nan')}}}, 'fit.loss.kappa', ''),
    ],
)
def test_invalid_values_name_the_field(settings, location, fragment):
    message = error_of(**settings)
    assert message.startswith(location), message
    assert fragment in message


def test_stress_weight_is_refused_not_dropped():
    message = error_of(loss_weights={'energy': 1, 'forces': 1, 'stress': 0.1})
    assert 'loss_weights' in message and 'cannot fit stress' in message
    assert LossWeights(stress=None).stress is None
    assert LossWeights(stress=0).to_kappa() == pytest.approx(0.3)


def test_loss_weights_and_kappa_together_is_an_error():
    message = error_of(loss_weights={'energy': 1, 'forces': 1}, fit={'loss': {'kappa': 0.2}})
    assert 'either loss_weights or fit.loss.kappa' in message


@pytest.mark.parametrize(
    ('section', 'key', 'instead'),
    [
        ('data', 'filename', 'training_set'),
        ('data', 'test_filename', 'test_set'),
        ('data', 'datapath', 'training_set'),
        ('fit', 'callbacks', 'not supported'),
        ('potential', 'initial_potential', 'initial_potential'),
        ('potential', 'filename', 'initial_potential'),
    ],
)
def test_plugin_owned_keys_say_which_input_to_use(section, key, instead):
    message = error_of(**{section: {key: 'x'}})
    assert f'{section}.{key} is set by the plugin' in message
    assert instead in message


def test_cutoff_shortcut_sets_every_bond():
    settings = PacemakerSettings(cutoff=6.5, potential={'bonds': {'ALL': {}, 'Cu': {'radbase': 'ChebPow'}}})
    assert {bond.rcut for bond in settings.potential.bonds.values()} == {6.5}
    assert settings.potential.cutoff == 6.5
    assert 'cutoff' not in settings.to_pacemaker_input('x')
    assert 'conflicts' in error_of(cutoff=6.0, potential={'bonds': {'ALL': {'rcut': 5.0}}})


def test_elements_from_data_only_where_omitted():
    assert PacemakerSettings().with_elements(['Cu', 'Al']).potential.elements == ['Al', 'Cu']
    explicit = PacemakerSettings(potential={'elements': ['Cu']})
    assert explicit.with_elements(['Al']).potential.elements == ['Cu']
