"""Settings: absent keys stay absent (pacemaker's defaults), the plugin's fills, the loss-weight mapping, keys
pacemaker ignores, and a named error for every kind of bad value."""

import pytest
from pydantic import ValidationError

from aiida_mlip_autopipe.calculations.settings import (
    BROKEN_OPTIMIZERS,
    OPTIMIZER_OPTIONS,
    TEMPLATE_BLOCKS,
    TEMPLATE_KAPPA,
    LossWeights,
    PacemakerSettings,
    first_error_location,
    ignored_keys,
)


def error_of(**settings) -> str:
    with pytest.raises(ValidationError) as info:
        PacemakerSettings.model_validate(settings)
    return first_error_location(info.value)


def test_absent_keys_stay_absent_and_fills_are_recorded():
    """Nothing pacemaker has a default for is written; only what it requires is filled, and reported."""
    settings, filled = PacemakerSettings().complete(['Cu'])
    document = settings.to_pacemaker_input('data.pckl.gzip')
    assert set(document) == {'potential', 'fit', 'backend', 'data'}  # no seed, no maxiter: pacemaker's own
    assert document['backend'] == {'evaluator': 'tensorpot'}
    assert document['data'] == {'filename': 'data.pckl.gzip'}
    potential = document['potential']
    assert potential['elements'] == ['Cu']
    assert 'number_of_functions_per_element' not in potential['functions']  # absent: every function
    assert potential['bonds'] == TEMPLATE_BLOCKS['bonds']
    assert set(potential['functions']) == set(TEMPLATE_BLOCKS['functions'])
    assert set(filled) == {
        'potential.elements',
        'potential.embeddings',
        'potential.bonds',
        'potential.functions',
        'fit.loss.kappa',
        'backend.evaluator',
    }
    assert document['fit']['loss'] == {'kappa': TEMPLATE_KAPPA}  # pacemaker's own 0 would ignore the forces


def test_nothing_the_user_gave_is_changed():
    given = {
        'seed': 7,
        'potential': {
            'elements': ['Cu'],
            'embeddings': {'ALL': {'npot': 'FinnisSinclair', 'fs_parameters': [1, 1], 'ndensity': 1}},
            'bonds': {'ALL': {'radbase': 'ChebExpCos', 'radparameters': [5.25], 'rcut': 7, 'dcut': 0.01}},
            'functions': {'UNARY': {'nradmax_by_orders': [15, 6, 4, 3, 2, 1], 'lmax_by_orders': [0, 3, 3, 2, 2, 1]}},
        },
        'fit': {
            'weighting': {'type': 'EnergyBasedWeightingPolicy', 'DElow': 1.0},
            'trainable_parameters': 'func',
            'loss': {'kappa': 0.0},
        },
        'backend': {'evaluator': 'pyace'},
    }
    settings, filled = PacemakerSettings.model_validate(given).complete(['Cu'])
    assert filled == {}
    document = settings.to_pacemaker_input('d')
    assert document['fit'] == {
        'weighting': {'type': 'EnergyBasedWeightingPolicy', 'DElow': 1.0},  # no DFup, no wlow added
        'trainable_parameters': 'func',
        'loss': {'kappa': 0.0},  # an explicit energies-only fit stays one
    }
    assert 'repulsion' not in document['fit'] and 'number_of_functions_per_element' not in document['potential']
    assert document['potential']['functions'] == given['potential']['functions']
    assert document['seed'] == 7 and document['backend'] == {'evaluator': 'pyace'}


def test_keys_pacemaker_ignores_are_dropped_with_a_message():
    raw = {'cutoff': 6.0, 'fit': {'loss': {'kappa': 0.95, 'w1_coeffs': 0, 'w2_coeffs': 0}}}
    messages = ignored_keys(raw)
    assert len(messages) == 3 and all('dropped' in message for message in messages)
    document = PacemakerSettings.model_validate(raw).to_pacemaker_input('d')
    assert document['fit']['loss'] == {'kappa': 0.95}
    assert 'cutoff' not in document


@pytest.mark.parametrize(
    'settings',
    [
        {'fit': {'trainable_parameters': ['func']}},
        {'fit': {'trainable_parameters': {'ALL': 'radial', 'Cu': ['func', 'radial']}}},
        {'fit': {'randomize_func_coeffs': 0.1, 'fit_cycles': 2}},
        {'data': {'reference_energy': 'VASP_PBE_500_0.125_0.1_NM'}},
        {'data': {'reference_energy': {'Al': -56.2, 'shift': 0.1}}},
        {'potential': {'functions': {'AlNi': {'nradmax_by_orders': [5, 2], 'lmax_by_orders': [0, 1]}}}},
        {'potential': {'bonds': {'AlNi': {'core-repulsion': [0.0, 5.0], 'nradbase': 8}}}},
        {'backend': {'imagetype': 'pdf', 'gpu_config': {'gpu_ind': 0, 'mem_limit': 0}}},
    ],
)
def test_keys_pacemaker_reads_are_accepted(settings):
    PacemakerSettings.model_validate(settings)


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
        ({'seed': -1}, 'seed', 'greater than or equal to 0'),
        ({'seed': 2**32}, 'seed', 'less than or equal to 4294967295'),
        ({'fit': {'maxiter': True}}, 'fit.maxiter', 'valid integer'),
        ({'potential': {'bonds': {'ALL': {'radparameters': []}}}}, 'potential.bonds.ALL.radparameters', 'at least 1'),
        ({'potential': {'deltaSplineBins': 1e-300}}, 'potential.deltaSplineBins', 'greater than or equal to 0.00001'),
        (
            {'potential': {'elements': ['Cu'], 'bonds': {'CuAl': {'rcut': 5.0}}}},
            'potential',
            'names Al, which is not among the elements',
        ),
        ({'fit': {'weighting': {'DElow': 1.0}}}, 'fit.weighting.type', 'Field required'),
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


def test_elements_from_data_only_where_omitted():
    assert PacemakerSettings().complete(['Cu', 'Al'])[0].potential.elements == ['Al', 'Cu']
    explicit = PacemakerSettings(potential={'elements': ['Cu']})
    assert explicit.complete(['Al'])[0].potential.elements == ['Cu']


def test_a_bond_block_for_an_element_not_in_the_data_is_refused_when_elements_are_filled():
    with pytest.raises(ValidationError, match='names Al, which is not among the elements'):
        PacemakerSettings(potential={'bonds': {'AlCu': {'rcut': 5.0}}}).complete(['Cu'])


@pytest.mark.parametrize(
    ('fit', 'fragment'),
    [
        ({'options': {'gtoll': 1e-8}}, "gtoll is not an option of optimizer 'BFGS'"),
        ({'options': {'maxiterr': 5}}, "maxiterr is not an option of optimizer 'BFGS'"),
        ({'optimizer': 'BFGS', 'options': {'maxcor': 50}}, 'allowed: gtol, norm, eps'),
        ({'optimizer': 'CG', 'options': {'ftol': 1e-8}}, "ftol is not an option of optimizer 'CG'"),
        ({'optimizer': 'L-BFGS-B', 'options': {'xrtol': 0.1}}, 'allowed: maxcor, ftol, gtol'),
        ({'options': {'maxiter': 5}}, 'overwritten by pacemaker with fit.maxiter'),
        ({'optimizer': 'L-BFGS-B', 'options': {'maxcor': 2.5}}, 'options.maxcor must be a positive integer'),
        ({'options': {'gtol': -1.0}}, 'options.gtol must not be negative'),
        ({'options': {'c1': 0.95}}, 'must satisfy 0 < c1 < c2 < 1'),
        ({'options': {'disp': 1}}, 'options.disp must be true or false'),
    ],
)
def test_fit_options_are_checked_against_the_optimizer(fit, fragment):
    """Defect 7 of issue 20: options scipy would only warn about (and ignore) are refused, naming the allowed ones."""
    message = error_of(fit=fit)
    assert fragment in message, message
    assert '\n' not in message


@pytest.mark.parametrize(
    'fit',
    [
        {'options': {'gtol': 1e-8, 'c2': 0.8, 'disp': True}},
        {'optimizer': 'L-BFGS-B', 'options': {'maxcor': 50, 'ftol': 0.0, 'maxls': 30}},
        {'optimizer': 'CG', 'options': {'gtol': 1e-6, 'norm': 2.0}},
    ],
)
def test_options_of_the_chosen_optimizer_pass(fit):
    assert PacemakerSettings.model_validate({'fit': fit}).fit.options == fit['options']


def test_optimizer_options_exist_in_scipy():
    """The table is scipy's own: every option is a parameter of the optimiser's scipy function."""
    import inspect

    from scipy.optimize._lbfgsb_py import _minimize_lbfgsb
    from scipy.optimize._optimize import _minimize_bfgs, _minimize_cg

    functions = {'BFGS': _minimize_bfgs, 'L-BFGS-B': _minimize_lbfgsb, 'CG': _minimize_cg}
    for optimizer, options in OPTIMIZER_OPTIONS.items():
        assert set(options) <= set(inspect.signature(functions[optimizer]).parameters), optimizer


@pytest.mark.parametrize('optimizer', sorted(BROKEN_OPTIMIZERS))
def test_optimizers_that_fail_inside_pacemaker_are_refused(optimizer):
    """Defect 7 of issue 20: Adam/SGD fail after the whole fit (res_opt None); trf/dogbox/lm and dual_annealing
    fail at the start of the fit (measured by the fuzz test's one-iteration fits)."""
    message = error_of(fit={'optimizer': optimizer})
    assert f'optimizer {optimizer!r} is refused' in message
    assert 'use one of BFGS, L-BFGS-B, CG' in message


@pytest.mark.parametrize(
    ('weighting', 'fragment'),
    [
        ({'nfit': 10, 'n_lower': 2}, 'nfit cannot be combined with n_lower'),
        ({'nfit': 10, 'n_lower': 2, 'n_upper': 3}, 'nfit cannot be combined with n_lower and n_upper'),
        ({'n_upper': 3}, 'n_upper needs its partner'),
        ({'n_lower': 3}, 'n_lower needs its partner'),
    ],
)
def test_weighting_combinations_pacemaker_refuses_are_refused(weighting, fragment):
    """Defect 8 of issue 20: pacemaker's EnergyBasedWeightingPolicy takes nfit alone, or n_lower with n_upper."""
    message = error_of(fit={'weighting': {'type': 'EnergyBasedWeightingPolicy', **weighting}})
    assert fragment in message, message


@pytest.mark.parametrize('weighting', [{'nfit': 10}, {'n_lower': 2, 'n_upper': 3}, {}])
def test_weighting_combinations_pacemaker_takes_pass(weighting):
    PacemakerSettings.model_validate({'fit': {'weighting': {'type': 'EnergyBasedWeightingPolicy', **weighting}}})


@pytest.mark.parametrize(
    ('potential', 'fragment'),
    [
        ({'embeddings': {'ALL': {'npot': 'FinnisSinclair'}}}, 'no block gives ndensity for Cu'),
        ({'embeddings': {'ALL': {'ndensity': 1}}}, 'no block gives fs_parameters for Cu'),
        ({'bonds': {'ALL': {'rcut': 4.0}}}, 'no block gives radparameters for Cu'),
        ({'bonds': {'ALL': {'radparameters': [5.25]}}}, 'no block gives rcut for Cu'),
    ],
)
def test_blocks_without_the_keys_pacemaker_needs_are_refused(potential, fragment):
    """Found by the fuzz test: a block without them fails inside pacemaker (KeyError, segmentation fault)."""
    with pytest.raises(ValueError, match=fragment):
        PacemakerSettings.model_validate({'potential': potential}).complete(['Cu'])


@pytest.mark.parametrize(
    ('functions', 'fragment'),
    [
        ({'BINARY': {'nradmax_by_orders': [3], 'lmax_by_orders': [0]}}, 'functions of Al, Cu alone'),
        ({'AlCu': {'nradmax_by_orders': [3], 'lmax_by_orders': [0]}}, 'functions of Al, Cu alone'),
        ({'Cu': {'nradmax_by_orders': [3], 'lmax_by_orders': [0]}}, 'functions of Al alone'),
    ],
)
def test_function_blocks_that_leave_an_element_out_are_refused(functions, fragment):
    """Found by the fuzz test in CI: pacemaker takes each element's ndensity from its one-element function block and
    fails without one (``element_ndensity_dict neither provided nor constructed``, ``KeyError: 'Al'``)."""
    settings = {'potential': {'functions': {'number_of_functions_per_element': 1, **functions}}}
    with pytest.raises(ValueError, match=fragment):
        PacemakerSettings.model_validate(settings).complete(['Al', 'Cu'])


BLOCK = {'nradmax_by_orders': [3, 2], 'lmax_by_orders': [0, 1]}
UNARY = {'UNARY': BLOCK}


@pytest.mark.parametrize(
    ('elements', 'potential', 'fragment'),
    [
        (  # pacemaker: Given `nradbase`=3 for bond ('Al', 'Al') is less than nradbasemax=15 (fuzz seed 1462499729)
            ['Al', 'Cu'],
            {
                'bonds': {'ALL': {'radparameters': [5.25], 'rcut': 4.5, 'nradbase': 3}},
                'functions': {'ALL': {'nradmax_by_orders': [15, 3], 'lmax_by_orders': [0, 2]}},
            },
            'nradbase=3 for the Al-Al bond is below the 15',
        ),
        (
            ['Al', 'Cu'],
            {'bonds': {'ALL': {'radparameters': [5.25], 'rcut': 4.5}, 'Cu': {'lmax': 0}}, 'functions': UNARY},
            'lmax=0 for the Cu-Cu bond is below the 1',
        ),
        (  # pacemaker: RuntimeError: dictionary changed size during iteration
            ['Al', 'Cu'],
            {'functions': {**UNARY, 'AlCu': BLOCK}},
            'gives Al atoms Cu neighbours but none gives Cu atoms Al neighbours',
        ),
        (  # pacemaker: Function specifications max 'ns' is larger than block nradbaseij (fuzz seed 1068077520)
            ['Al', 'Cu'],
            {'functions': {'ALL': BLOCK, 'CuCuAl': BLOCK}},
            "function block 'CuCuAl' names an element twice",
        ),
        (  # pacemaker: IndexError: map::at
            ['Al', 'Cu', 'Ni'],
            {'functions': {**UNARY, 'TERNARY': {'nradmax_by_orders': [3, 2, 1], 'lmax_by_orders': [0, 1, 1]}}},
            'no block AlCu does',
        ),
    ],
)
def test_bases_pacemaker_cannot_build_are_refused(elements, potential, fragment):
    """Found by the fuzz test and a differential check against pyace's basis builder (300 random 2- and 3-element
    cases agree, bar blocks that leave an element without functions, which the plugin refuses and pacemaker builds
    into a potential with no functions for that element)."""
    with pytest.raises(ValueError, match=fragment):
        PacemakerSettings.model_validate({'potential': potential}).complete(elements)


@pytest.mark.parametrize(('elements', 'kept', 'shares'), [(['Al', 'Cu'], 1, 2), (['Al', 'Cu', 'Ni'], 3, 4)])
def test_fewer_functions_than_blocks_per_element_is_refused(elements, kept, shares):
    """Found by the adversarial check: pacemaker keeps number_of_functions_per_element // blocks functions in each
    block of an element (measured: 2 elements 1 -> 0, 2 -> 2; 3 elements 1-3 -> 0, 4 -> 4): a potential without
    functions."""
    settings = {'potential': {'functions': {'number_of_functions_per_element': kept}}}  # the template's blocks
    with pytest.raises(ValueError, match=f'over the {shares} function blocks of Al'):
        PacemakerSettings.model_validate(settings).complete(elements)
    settings['potential']['functions']['number_of_functions_per_element'] = shares
    PacemakerSettings.model_validate(settings).complete(elements)


@pytest.mark.parametrize(
    'functions',
    [{**UNARY, 'AlCu': BLOCK, 'CuAl': BLOCK}, {**UNARY, 'BINARY': BLOCK}, {'ALL': BLOCK, 'AlCu': BLOCK}],
)
def test_bases_pacemaker_builds_pass(functions):
    bonds = {'ALL': {'radparameters': [5.25], 'rcut': 4.5, 'nradbase': 3, 'nradmax': 2, 'lmax': 1}}
    PacemakerSettings.model_validate({'potential': {'bonds': bonds, 'functions': functions}}).complete(['Al', 'Cu'])


@pytest.mark.parametrize('key', ['ALL', 'UNARY'])
def test_a_function_block_for_every_element_passes(key):
    settings = {'potential': {'functions': {key: {'nradmax_by_orders': [3], 'lmax_by_orders': [0]}}}}
    PacemakerSettings.model_validate(settings).complete(['Al', 'Cu'])
    block = {'nradmax_by_orders': [3], 'lmax_by_orders': [0]}
    both = {'Al': block, 'Cu': block}
    PacemakerSettings.model_validate({'potential': {'functions': both}}).complete(['Al', 'Cu'])
