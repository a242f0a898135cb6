"""The input.yaml template: round trip of many settings, hostile strings, user templates."""

import random

import pytest
import yaml

from aiida_mlip_autopipe.calculations.input_file import InputFileError, load_input, render_input, yaml_value
from aiida_mlip_autopipe.calculations.settings import PacemakerSettings


def random_settings(rng: random.Random) -> PacemakerSettings:
    """Settings with many optional keys set at random."""
    raw = {
        'seed': rng.randint(0, 10**6),
        'potential': {
            'elements': rng.sample(['Cu', 'Al', 'Ni', 'Fe', 'H'], k=rng.randint(1, 3)),
            'deltaSplineBins': rng.choice([0.001, 0.0005]),
            'bonds': {
                'ALL': {'rcut': rng.uniform(3, 7), 'dcut': 0.01, 'radparameters': [rng.uniform(4, 6)]},
                'UNARY': {
                    'radbase': rng.choice(['SBessel', 'ChebExpCos']),
                    'r_in': 1.1,
                    'delta_in': 0.2,
                    'core-repulsion': [100.0, 5.0],
                    'inner_cutoff_type': 'zbl',
                },
            },
            'embeddings': {'ALL': {'npot': 'FinnisSinclair', 'fs_parameters': [1, 1], 'ndensity': 1}},
            'functions': {
                'number_of_functions_per_element': rng.randint(1, 500),
                'UNARY': {'nradmax_by_orders': [15, 3, 2], 'lmax_by_orders': [0, 3, 2]},
            },
        },
        'fit': {
            'loss': {
                'kappa': rng.choice([0.0, 0.3, 1.0, 'auto']),
                'L1_coeffs': 1e-8 * rng.random(),
                'L2_coeffs': rng.choice([0.0, 1e-10]),
                'w1_rad': 1e-4,
            },
            'weighting': {
                'type': 'EnergyBasedWeightingPolicy',
                'DElow': 0.5,
                'DEup': 5.0,
                'energy': 'cohesive',
                'seed': 7,
            },
            'optimizer': (optimizer := rng.choice(['BFGS', 'L-BFGS-B'])),
            'options': {'maxcor': 100, 'gtol': 1e-7} if optimizer == 'L-BFGS-B' else {'gtol': 1e-7, 'c2': 0.8},
            'maxiter': rng.randint(1, 5000),
            'repulsion': rng.choice(['auto', None]),
            'ladder_step': rng.choice([None, 10, 0.2, (10, 0.2)]),
            'ladder_type': rng.choice([None, 'power_order']),
            'min_relative_train_loss_per_iter': 5e-5,
        },
        'backend': {
            'evaluator': rng.choice(['tensorpot', 'pyace']),
            'batch_size': rng.randint(1, 1000),
            'batch_size_reduction': rng.choice([True, False]),
            'display_step': 7,
            'gpu_config': {'gpu_ind': 0, 'mem_limit': 0},
        },
        'data': {
            'test_size': rng.choice([None, 0.1, 5]),
            'reference_energy': rng.choice([None, 'auto', 0.0, {'Cu': -3.5, 'shift': 0.1}]),
            'aug_factor': 1e-4,
            'ignore_weights': False,
        },
        'metadata': {'comment': 'line one', 'purpose': 'unit: test'},
    }
    return PacemakerSettings.model_validate(raw)


@pytest.mark.parametrize('seed', range(40))
def test_rendered_input_parses_back_to_the_settings(seed):
    settings = random_settings(random.Random(seed))
    document = settings.to_pacemaker_input('training_data.pckl.gzip', test_filename='test_data.pckl.gzip')
    text = render_input(document)
    assert yaml.safe_load(text) == document
    assert load_input(text) == document
    # and pacemaker's own reader (ruamel, YAML 1.2) sees the same
    ruamel = pytest.importorskip('ruamel.yaml')
    assert ruamel.YAML(typ='safe', pure=True).load(text) == document
    # and it validates again as the same settings
    assert (
        PacemakerSettings.from_pacemaker_input(yaml.safe_load(text)).to_pacemaker_input(
            'training_data.pckl.gzip', test_filename='test_data.pckl.gzip'
        )
        == document
    )


HOSTILE = [
    'x\nfit: {maxiter: 1}',
    'a: b',
    '{evil: 1}',
    '[1, 2]',
    '&anchor x',
    '*anchor',
    '!!python/object/apply:os.system ["echo pwned"]',
    '$(rm -rf /); `id`',
    "'; DROP",
    '"quoted"\\',
    '# comment',
    '../../etc/passwd',
    '\r\n\t\x00\u2028',
    '%YAML 1.1\n---\nfoo',
]


@pytest.mark.parametrize('value', HOSTILE)
def test_hostile_string_cannot_add_a_key(value):
    given = {'seed': 1, 'fit': {'maxiter': 3}}
    document = PacemakerSettings(metadata={'comment': value}, **given).complete(['Cu'])[0].to_pacemaker_input('d')
    text = render_input(document)
    parsed = yaml.safe_load(text)
    assert parsed == document
    assert parsed['metadata'] == {'comment': value}
    assert set(parsed) == {'seed', 'metadata', 'potential', 'data', 'fit', 'backend'}
    assert parsed['fit'] == document['fit']
    assert len(text.splitlines()) == len(
        render_input(
            PacemakerSettings(metadata={'comment': 'x'}, **given).complete(['Cu'])[0].to_pacemaker_input('d')
        ).splitlines()
    )


@pytest.mark.parametrize('value', [1e-8, 1e20, 0.1, -3.0, 2.5e-300, 7, True, None, 'yes', 'no', 'null', '1e5', '0x1F'])
def test_scalars_keep_their_type(value):
    assert yaml.safe_load(f'v: {yaml_value(value)}')['v'] == value


def test_non_finite_numbers_are_refused():
    with pytest.raises(InputFileError, match='non-finite'):
        yaml_value(float('inf'))


def test_template_with_missing_placeholder_is_refused():
    with pytest.raises(InputFileError, match='undefined variable'):
        render_input({'seed': 1}, template='seed: {{ seed | yaml }}\nfoo: {{ not_there | yaml }}\n')


def test_template_cannot_write_hostile_keys():
    with pytest.raises(InputFileError, match='only plain identifiers'):
        render_input(
            {'fit': {'a: b\nc': 1}}, template='fit:\n{% for k, v in fit.items() %}  {{ k | key }}: 1\n{% endfor %}'
        )


def test_rendered_text_must_be_a_mapping_with_sections():
    with pytest.raises(InputFileError, match='lacks the section'):
        load_input('seed: 1\n')
    with pytest.raises(InputFileError, match='not valid YAML'):
        load_input('potential: [1,\n')


def test_rendered_input_is_read_in_pacemakers_yaml_dialect():
    """Defect 4 of issue 20: one dialect, pacemaker's (ruamel, YAML 1.2): ``010`` is 10 (PyYAML: 8), ``1:30`` a
    string (PyYAML: 90), ``yes`` a string (PyYAML: True)."""
    text = 'potential: {}\nbackend: {}\ndata: {}\nseed: 010\nfit: {maxiter: 1:30}\nmetadata: {ok: yes}\n'
    document = load_input(text)
    assert document['seed'] == 10
    assert document['fit']['maxiter'] == '1:30'
    assert document['metadata']['ok'] == 'yes'
    assert yaml.safe_load(text)['seed'] == 8  # the dialect the plugin no longer uses


@pytest.mark.parametrize(
    'text',
    [
        'potential: {}\nbackend: {}\ndata: {}\nfit: {maxiter: 1}\nfit: {maxiter: 2}\n',
        'potential: {}\nbackend: {}\ndata: {}\nfit: {maxiter: 1, maxiter: 2}\n',
    ],
)
def test_duplicate_keys_are_refused_as_pacemaker_refuses_them(text):
    """Defect 4 of issue 20: PyYAML took the last duplicate; pacemaker's reader fails (DuplicateKeyError, exit
    410 after start-up). The refusal is one line and names the key."""
    with pytest.raises(InputFileError, match='duplicate key') as info:
        load_input(text)
    assert '\n' not in str(info.value)
    assert '"fit"' in str(info.value) or '"maxiter"' in str(info.value)


@pytest.mark.parametrize('text', ['😀', 'a\U0010ffffb', 'é\u2028\x85\x7f', '"\\'])
def test_any_string_reads_back_in_pacemakers_dialect(text):
    """Found by the fuzz test: JSON's surrogate-pair escapes of characters beyond the BMP read back in ruamel as two
    lone surrogates (the plugin refused such metadata as 'does not parse back'); YAML's \\U escape is used."""
    assert load_input(f'potential: {{}}\nbackend: {{}}\ndata: {{}}\nmetadata: {{"c": {yaml_value(text)}}}\n')[
        'metadata'
    ] == {'c': text}
