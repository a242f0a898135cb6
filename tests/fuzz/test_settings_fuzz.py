"""Differential fuzzing of the settings against pacemaker itself.

``hypothesis`` generates settings over every section and key of :class:`PacemakerSettings` (valid and borderline
values), user templates (a missing ``fit:`` line, literal zero-padded ``010`` and sexagesimal ``1:30`` numbers,
duplicate keys) and ``initial_potential`` files. For each case the plugin's verdict (the calculation's own input
validation) is compared with pacemaker's, asked through one long-lived worker in pacemaker's environment
(``pacemaker_worker.py``):

* every case the plugin **accepts** is read by pacemaker (ruamel, as ``pacemaker`` reads ``input.yaml``, with the
  plugin's command line) exactly as the plugin records it (``PacemakerCalculation.settings_read``, which the
  parser stores as ``metrics.settings_used``), and pacemaker's start-up (``pacemaker --dry-run``: basis, weights,
  data, backend) does not fail on it; a few accepted cases also run a one-iteration fit and the ``.yace``
  conversion. A case pacemaker would reject is therefore one the plugin refused;
* every case the plugin **refuses** has a one-line reason.

Budget: ``FUZZ_EXAMPLES`` cases (default 500); pacemaker dry runs while ``FUZZ_BUDGET_S`` seconds (default 90)
last, and at least 20; ``FUZZ_FITS`` one-iteration fits (default 1; the explicit examples come first, so a run always
fits). After the budget, accepted cases are still read by pacemaker's reader in the worker. The seed is fixed
(``DEFAULT_SEED``: CI checks the same cases every run); ``FUZZ_SEED=random`` explores new ones, ``FUZZ_SEED=N``
replays a run (the seed is printed, and named in a failure); ``FUZZ_SHRINK=0`` skips hypothesis' shrinking (each
step reruns pacemaker).
"""

from __future__ import annotations

import io
import json
import os
import random
import time

import pytest
from hypothesis import HealthCheck, Phase, example, given, seed, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.pacemaker

EXAMPLES = int(os.environ.get('FUZZ_EXAMPLES', '500'))
BUDGET_S = float(os.environ.get('FUZZ_BUDGET_S', '90'))
MIN_DRY_RUNS = 20
FITS = int(os.environ.get('FUZZ_FITS', '1'))
#: A fixed seed by default, so that CI checks the same cases on every run; ``FUZZ_SEED=random`` draws a new one.
DEFAULT_SEED = 20261206
_SEED_TEXT = os.environ.get('FUZZ_SEED', str(DEFAULT_SEED))
SEED = random.SystemRandom().randrange(2**32) if _SEED_TEXT == 'random' else int(_SEED_TEXT)
SHRINK = os.environ.get('FUZZ_SHRINK', '1') != '0'

ELEMENTS = ['Al', 'Cu']

# -- generators ----------------------------------------------------------------------------------------------------


def maybe(strategy):
    """``None`` (the key is left out) or a value."""
    return st.none() | strategy


def section(**fields):
    """A mapping with any subset of ``fields`` (``None`` values are left out)."""
    return st.fixed_dictionaries({}, optional={key: value for key, value in fields.items()}).map(
        lambda data: {key: value for key, value in data.items() if value is not None}
    )


def pick(valid: list, borderline: list = ()):
    """One of ``valid`` (mostly) or of ``borderline`` (values pacemaker or the schema may refuse)."""
    return st.sampled_from([*valid, *valid, *valid, *borderline]) if borderline else st.sampled_from(valid)


def with_typo(strategy, key: str, value):
    """Rarely, a misspelt key beside the valid ones."""
    return st.builds(
        lambda data, typo: {**data, key: value} if typo else data, strategy, st.sampled_from([False] * 9 + [True])
    )


small_float = pick([0.0, 1e-8, 1e-3, 0.1], [2.5, -1.0])
positive_int = pick([1, 2, 3, 5, 10], [0])


def block(valid: dict, borderline: dict):
    """A complete valid block, sometimes with one key dropped or set to a borderline value, plus optional keys."""
    mutations = [None] * 6 + [('drop', key) for key in valid] + [('set', key) for key in borderline]

    def build(base: dict, mutation, extra: dict) -> dict:
        result = {**base, **extra}
        if mutation is not None and mutation[0] == 'drop':
            result.pop(mutation[1], None)
        elif mutation is not None:
            result[mutation[1]] = borderline[mutation[1]]
        return result

    return st.builds(build, st.just(valid), st.sampled_from(mutations), st.just({}))


embedding = st.builds(
    lambda base, extra: {**base, **extra},
    block(
        {'npot': 'FinnisSinclairShiftedScaled', 'fs_parameters': [1, 1], 'ndensity': 1},
        {'npot': 'Linear', 'fs_parameters': [1, 1, 1, 0.5], 'ndensity': 2},
    ),
    section(rho_core_cut=pick([1.0, 200.0]), drho_core_cut=pick([1.0, 250.0])),
)
bond = st.builds(
    lambda base, extra: {**base, **extra},
    block(
        {'radbase': 'SBessel', 'radparameters': [5.25], 'rcut': 4.0, 'dcut': 0.01, 'NameOfCutoffFunction': 'cos'},
        {'radbase': 'Bessel', 'radparameters': [], 'rcut': 0.0},
    ),
    section(
        radbase=pick(['ChebExpCos', 'ChebPow']),
        rcut=pick([3.0, 4.5]),
        r_in=pick([1.0, 2.0], [5.0]),
        delta_in=pick([0.1, 0.5]),
        inner_cutoff_type=pick(['distance', 'zbl'], ['density']),
        nradbase=pick([1, 3]),
        nradmax=pick([1, 2]),
        lmax=pick([0, 1]),
    ),
)
function_block = st.builds(
    lambda orders, coefs: {**orders, **({'coefs_init': coefs} if coefs else {})},
    pick(
        [
            {'nradmax_by_orders': [3], 'lmax_by_orders': [0]},
            {'nradmax_by_orders': [3, 1], 'lmax_by_orders': [0, 0]},
            {'nradmax_by_orders': [4, 2, 1], 'lmax_by_orders': [0, 1, 1]},
        ],
        [{'nradmax_by_orders': [3, 1], 'lmax_by_orders': [0]}, {'nradmax_by_orders': [3]}],
    ),
    pick([None, 'zero', 'random']),
)
embedding_keys = pick(['ALL', 'UNARY', 'Al', 'Cu'], ['Ni', 'AlCu'])
bond_keys = pick(['ALL', 'UNARY', 'BINARY', 'AlCu', 'CuAl', 'Cu'], ['AlNi', 'TERNARY'])
function_keys = pick(['ALL', 'UNARY', 'BINARY', 'Al', 'AlCu', 'CuCuAl'], ['Ni'])

#: The basis: mostly small blocks (the plugin fills pacemaker's large template blocks where none are given, and
#: constructing those takes seconds, so the fuzz gives its own blocks most of the time).
potential = st.builds(
    lambda base, functions: {**base, **({'functions': functions} if functions is not None else {})},
    section(
        elements=pick([ELEMENTS, ['Cu', 'Al']], [['Cu'], ['Al', 'Cu', 'Ni'], [], ['Al', 'Al']]),
        deltaSplineBins=pick([0.001, 0.0005], [1e-6]),
        embeddings=st.dictionaries(embedding_keys, embedding, min_size=1, max_size=2),
        bonds=st.dictionaries(bond_keys, bond, min_size=1, max_size=2),
        overwrite_blocks_from_initial_bbasis=st.booleans(),
    ),
    pick(
        [{'number_of_functions_per_element': 3, 'ALL': {'nradmax_by_orders': [3, 1], 'lmax_by_orders': [0, 0]}}],
        [None, {'number_of_functions_per_element': 2}],
    )
    | st.builds(
        lambda count, blocks: {**({'number_of_functions_per_element': count} if count is not None else {}), **blocks},
        pick([1, 3, 5, None], [0]),
        st.dictionaries(function_keys, function_block, min_size=1, max_size=2),
    ),
)

option_names = pick(
    ['gtol', 'maxcor', 'ftol', 'eps', 'norm', 'c1', 'c2', 'xrtol', 'disp', 'return_all', 'maxfun', 'maxls'],
    ['gtoll', 'maxiter', 'maxiterr', 'iprint', 'finite_diff_rel_step', 'hess_inv0', 'workers'],
)
option_values = pick([1e-8, 1e-5, 0.5, 10, True], [0.95, 0, -1, False, 2.0])
weighting = section(
    type=pick(['EnergyBasedWeightingPolicy'], ['UniformWeightingPolicy']),
    nfit=pick([2, 3, 10], [1]),
    n_lower=pick([1, 2]),
    n_upper=pick([1, 2]),
    DElow=pick([0.1, 1.0], [5.0]),
    DEup=pick([10.0, 1.0], [0.5]),
    DFup=pick([50.0], [0.001]),
    DE=pick([1.0]),
    DF=pick([1.0]),
    wlow=pick([0.75, 1.0]),
    reftype=pick(['all'], ['bulk', 'cluster']),
    energy=pick(['convex_hull', 'cohesive']),
    seed=pick([0, 42]),
)
fit = with_typo(
    section(
        loss=section(
            kappa=pick([0.0, 0.3, 1.0, 'auto'], [1.5]),
            L1_coeffs=small_float,
            L2_coeffs=small_float,
            w0_rad=small_float,
            w1_rad=small_float,
            w2_rad=small_float,
            w_orth=small_float,
        ),
        weighting=weighting,
        optimizer=pick(['BFGS', 'L-BFGS-B', 'CG'], ['trf', 'dogbox', 'lm', 'dual_annealing', 'Adam', 'SGD', 'Powell']),
        options=st.dictionaries(option_names, option_values, max_size=3),
        repulsion=pick(['auto'], ['zbl']),
        ladder_step=pick([1, 0.5, [1, 0.5]], [0]),
        ladder_type=pick(['body_order', 'power_order']),
        fit_cycles=pick([1, 2]),
        noise_relative_sigma=small_float,
        trainable_parameters=pick(['ALL', 'func', ['radial'], {'Cu': 'func'}], [{'Ni': 'all'}]),
        min_relative_train_loss_per_iter=small_float,
        early_stopping_patience=positive_int,
    ),
    'maxiterr',
    3,
)
#: ``fit.maxiter`` is nearly always given (1 mostly, so that a fit case runs one iteration), and ``fit`` mostly.
fit = st.builds(
    lambda section_, maxiter: {**section_, **({'maxiter': maxiter} if maxiter is not None else {})},
    fit,
    pick([1, 1, 2, None], [0, -1, True, 1.5, '010', '1:30', 2**32]),
)
backend = section(
    evaluator=pick(['tensorpot'], ['pyace']),
    batch_size=pick([1, 2, 100], [0]),
    display_step=pick([1, 20]),
    batch_size_reduction=st.booleans(),
)
data = section(
    test_size=pick([0.25, 0.5, 1, 2], [0.1, 4]),
    reference_energy=pick(['auto', 0.0, {'Al': -3.0, 'Cu': -3.5}], [{'Cu': -3.5}, 'VASP']),
    ignore_weights=st.booleans(),
    aug_factor=pick([1e-4, 0.0]),
    seed=pick([0, 7], [-1]),
)
text_values = st.text(st.characters(codec='utf-8', exclude_categories=['Cs']), max_size=12)
pacemaker_settings = with_typo(
    section(
        seed=pick([0, 42, 2**32 - 1], [2**32, -1, True, '010']),
        metadata=st.dictionaries(pick(['comment', 'purpose'], ['bad key']), text_values, max_size=2),
        potential=potential,
        fit=fit | fit | fit,
        backend=backend,
        data=data,
        loss_weights=section(energy=pick([1.0], [0.0]), forces=pick([1.0, 3.0], [0.0])),
        cutoff=st.just(5.0),
    ),
    'sed',
    1,
)

#: Lines a user's template may hold: the plugin's renderings, and literal YAML with the dialect traps.
TEMPLATE_LINES = {
    'seed': ['seed: {{ seed | yaml }}', 'seed: 010', 'seed: 1:30', 'seed: 0o10'],
    'potential': ['potential: {{ potential | yaml }}'],
    'data': ['data: {{ data | yaml }}'],
    'backend': ['backend: {{ backend | yaml }}', 'backend: {evaluator: tensorpot, batch_size: 010}'],
    'fit': [
        '{% if fit is defined %}fit: {{ fit | yaml }}{% endif %}',
        'fit:\n  maxiter: 010',
        'fit:\n  maxiter: 1:30',
        'fit:\n  maxiter: 1\n  maxiter: 2',
        'fit: {maxiter: 1, loss: {kappa: 1:30}}',
        'fit: {maxiter: 001, optimizer: BFGS}',
        None,  # no fit line: pacemaker's defaults (maxiter 100, kappa 0)
    ],
}
template_strategy = st.builds(
    lambda seed_line, fit_line, backend_line, duplicate: (
        '\n'.join(
            line
            for line in (
                '# a user template',
                seed_line,
                TEMPLATE_LINES['potential'][0],
                TEMPLATE_LINES['data'][0],
                fit_line,
                backend_line,
                'backend: {{ backend | yaml }}' if duplicate else None,
            )
            if line
        )
        + '\n'
    ),
    st.sampled_from([None, *TEMPLATE_LINES['seed']]),
    st.sampled_from(TEMPLATE_LINES['fit']),
    st.sampled_from(TEMPLATE_LINES['backend']),
    st.booleans(),
)
#: ``initial_potential`` files: a real B-basis (made by the worker), and YAML that is not one.
POTENTIAL_FILES = ['BBASIS', 'a: 1\n', 'species: []\n', '- 1\n- 2\n', 'global: {}\nspecies: [{speciesblock: Cu}]\n']
case_strategy = st.fixed_dictionaries(
    {
        'settings': pacemaker_settings,
        'template': st.none() | st.none() | template_strategy,
        'initial_potential': st.none() | st.none() | st.none() | st.sampled_from(POTENTIAL_FILES),
        'fit': st.booleans(),
    }
)

# -- the two sides -------------------------------------------------------------------------------------------------


@pytest.fixture(scope='module')
def fuzz_data(aiida_profile, pacemaker_worker, tmp_path_factory):
    """The training set (4 Al-Cu EMT structures), its pacemaker pickle in the worker, and a valid B-basis."""
    from aiida_mlip_autopipe.data.training_set import TrainingSetData
    from aiida_mlip_autopipe.demo.emt import emt_structures

    training_set = TrainingSetData.from_atoms(emt_structures(4, elements=tuple(ELEMENTS), seed=2)).store()
    assert training_set.base.attributes.get('elements') == ELEMENTS
    path = tmp_path_factory.mktemp('fuzz_data') / 'structures.npz'
    path.write_bytes(training_set.base.repository.get_object_content(TrainingSetData.FILENAME, mode='rb'))
    assert pacemaker_worker.ask({'op': 'setup', 'npz': str(path)})['structures'] == 4
    bbasis = pacemaker_worker.ask({'op': 'bbasis', 'elements': ELEMENTS})['text']
    return training_set, bbasis


def plugin_verdict(code, training_set, case: dict, bbasis: str) -> tuple[str | None, dict]:
    """The calculation's own input validation of ``case``: ``(reason or None, inputs)``."""
    from aiida import orm

    from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation

    inputs = {
        'code': code,
        'training_set': training_set,
        'metadata': {'options': {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}}},
    }
    if case['settings']:
        inputs['settings'] = orm.Dict(case['settings'])
    if case['template'] is not None:
        inputs['template'] = orm.SinglefileData(io.BytesIO(case['template'].encode()), filename='input.yaml.j2')
    if case['initial_potential'] is not None:
        content = bbasis if case['initial_potential'] == 'BBASIS' else case['initial_potential']
        inputs['initial_potential'] = orm.SinglefileData(io.BytesIO(content.encode()), filename='potential.yaml')
    error = PacemakerCalculation.spec().inputs.validate(inputs)
    return (None if error is None else error.message), inputs


def one_iteration_case(optimizer: str, options: dict | None) -> dict:
    """An explicit case (run first, so that every run fits): a one-iteration fit of three functions per element."""
    fit = {'maxiter': 1, 'optimizer': optimizer, **({'options': options} if options else {})}
    functions = {'number_of_functions_per_element': 3, 'ALL': {'nradmax_by_orders': [3, 1], 'lmax_by_orders': [0, 0]}}
    potential = {
        'embeddings': {'ALL': {'npot': 'FinnisSinclairShiftedScaled', 'fs_parameters': [1, 1], 'ndensity': 1}},
        'bonds': {'ALL': {'radbase': 'SBessel', 'radparameters': [5.25], 'rcut': 4.0, 'dcut': 0.01}},
        'functions': functions,
    }
    return {'settings': {'potential': potential, 'fit': fit}, 'template': None, 'initial_potential': None, 'fit': True}


def one_iteration(read: dict) -> bool:
    """Whether pacemaker fits ``read`` in one short iteration: ``maxiter: 1``, one cycle, no ladder, few functions."""
    fit, potential = read.get('fit'), read.get('potential')
    if not isinstance(fit, dict) or not isinstance(potential, dict) or fit.get('maxiter') != 1:
        return False
    functions = potential.get('functions') or {}
    return (
        fit.get('fit_cycles', 1) == 1
        and 'ladder_step' not in fit
        and isinstance(functions.get('number_of_functions_per_element'), int)
        and functions['number_of_functions_per_element'] <= 5
    )


class Tally:
    def __init__(self):
        self.cases = self.refused = self.accepted = self.dry_runs = self.fits = 0
        self.started = time.monotonic()
        self.reasons: dict[str, int] = {}
        self.failing = False
        self.fit_shapes: set[str] = set()


def test_settings_agree_with_pacemaker(fuzz_data, fake_code, pacemaker_worker, capsys):
    """The invariant over generated cases: accepted means read as recorded and started without failure by
    pacemaker; refused means a one-line reason."""
    from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation

    training_set, bbasis = fuzz_data
    tally = Tally()
    with capsys.disabled():
        print(f'\nsettings fuzz: seed {SEED} (replay with FUZZ_SEED={SEED}), {EXAMPLES} cases, budget {BUDGET_S} s')

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
        phases=[Phase.explicit, Phase.generate, *([Phase.shrink] if SHRINK else [])],
    )
    @given(case=case_strategy)
    @example(case=one_iteration_case('L-BFGS-B', {'maxcor': 5, 'gtol': 1e-8}))
    @example(case=one_iteration_case('BFGS', {'c2': 0.8}))
    @example(case=one_iteration_case('CG', None))
    def check(case):
        tally.cases += 1
        reason, inputs = plugin_verdict(fake_code, training_set, case, bbasis)
        if reason is not None:
            tally.refused += 1
            head = reason.split("inputs': ", 1)[-1].removeprefix('invalid settings: ')
            head = head.split(': ')[0][:50] if head.startswith(('potential', 'fit', 'data', 'backend')) else head[:50]
            tally.reasons[head] = tally.reasons.get(head, 0) + 1
            assert '\n' not in reason, f'a refusal of more than one line: {reason}'
            return
        tally.accepted += 1
        _, text = PacemakerCalculation.input_document(inputs)
        initial = 'initial_potential' in inputs
        recorded = PacemakerCalculation.settings_read(text, initial)
        json.dumps(recorded, allow_nan=False)  # storable as metrics.settings_used
        flag = PacemakerCalculation.potential_flag(recorded) if initial else None
        fit_shape = json.dumps((recorded.get('fit') or {}).get('optimizer'))
        fit_run = (
            case['fit']
            and tally.fits < FITS
            and (fit_shape not in tally.fit_shapes or tally.failing)
            and initial is False
            and one_iteration(recorded)
        )
        in_budget = time.monotonic() - tally.started < BUDGET_S or tally.dry_runs < MIN_DRY_RUNS or tally.failing
        request = {'op': 'run', 'text': text, 'flag': flag, 'fit': bool(fit_run and in_budget)}
        if initial:
            request['potential'] = bbasis if case['initial_potential'] == 'BBASIS' else case['initial_potential']
        if not in_budget:
            request['read_only'] = True
        answer = pacemaker_worker.ask(request, timeout=240 if request['fit'] else 120)
        expected = json.loads(json.dumps(PacemakerCalculation.settings_read(text, False)))
        try:
            assert answer['read'] == expected, (
                f'pacemaker reads {answer["read"]}\nthe plugin records {expected}\ninput.yaml:\n{text}'
            )
            if initial and answer['potential_config'] is not None:
                used = recorded['potential']
                assert answer['potential_config'] == (used if isinstance(used, str) else 'dict'), answer
            assert answer['error'] is None, (
                f'the plugin accepted this case, pacemaker failed: {answer["error"]}\ninput.yaml:\n{text}'
            )
        except AssertionError as error:
            tally.failing = True
            raise AssertionError(f'{error}\n(replay with FUZZ_SEED={SEED})') from None
        if answer.get('ran'):
            tally.dry_runs += 1
        if request['fit'] and answer.get('ran'):
            tally.fits += 1
            tally.fit_shapes.add(fit_shape)

    check()
    elapsed = time.monotonic() - tally.started
    summary = (
        f'settings fuzz: seed {SEED}: {tally.cases} cases in {elapsed:.0f} s ({pacemaker_worker.startup_seconds:.0f} s '
        f'worker start-up before): {tally.refused} refused, {tally.accepted} accepted, of which {tally.dry_runs} '
        f'through pacemaker --dry-run and {tally.fits} one-iteration fits; refusals: '
        + ', '.join(f'{count} x {reason}' for reason, count in sorted(tally.reasons.items(), key=lambda i: -i[1])[:12])
    )
    with capsys.disabled():
        print(summary)
    assert tally.cases >= min(EXAMPLES, 500), summary
    assert tally.accepted >= 50 and tally.dry_runs >= 20, f'too few cases reached pacemaker: {summary}'
    assert tally.fits >= min(FITS, 1), f'no one-iteration fit ran: {summary}'
