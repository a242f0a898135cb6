"""Pacemaker's settings schema: its ``input.yaml`` as pydantic models, plus the seed's ``LossWeights``, and the port
validator that checks a ``Dict`` against such a model.

``PacemakerSettings`` mirrors the sections of pacemaker 0.4's own ``input.yaml`` (``seed``, ``metadata``,
``potential``, ``fit``, ``backend``, ``data``) with the same key names and every key pacemaker reads (taken from
its installed source, see ``docs/settings.md``). The rules:

* **Absent means pacemaker's default.** No model here carries a default of its own: a key the user leaves out is
  not written, so pacemaker applies its own value (``maxiter`` 100, ``kappa`` 0, all functions of the basis when
  ``number_of_functions_per_element`` is absent, no ZBL core without ``repulsion: auto``, ...).
* **Unknown keys are errors** (a typo such as ``kapa`` would silently become pacemaker's ``kappa: 0``).
* **Keys pacemaker reads but ignores are dropped with a message** (:func:`ignored_keys`): the top-level
  ``cutoff`` (deprecated in pacemaker) and ``fit.loss.w1_coeffs`` / ``w2_coeffs`` (swallowed by its ``**kwargs``).
* **The plugin fills only what pacemaker requires and the user left out** (:meth:`PacemakerSettings.complete`):
  ``potential.elements`` (from the data), the ``embeddings`` / ``bonds`` / ``functions`` blocks of the basis
  (pacemaker's own template values, :data:`TEMPLATE_BLOCKS`), ``fit.loss.kappa`` (the template's 0.3 where neither it
  nor ``loss_weights`` is given: pacemaker's fallback, 0, ignores the forces) and ``backend.evaluator``
  (``tensorpot``; pacemaker's fallback is its finite-difference ``pyace`` evaluator). What was filled is recorded on
  the calculation.
* Values pacemaker would accept and then fail on after start-up are refused here (``seed`` outside numpy's
  ``[0, 2**32)``, empty ``radparameters``, a ``deltaSplineBins`` that exhausts memory, booleans for integers).

``loss_weights`` (:class:`LossWeights`) is the one plugin-level key: energy/force weights mapped onto pacemaker's
single ``kappa``; giving it together with ``fit.loss.kappa`` is an error.
"""

from __future__ import annotations

import copy
import itertools
import re
from typing import Annotated, Any, Literal

from ase.data import chemical_symbols
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = (
    'OPTIMIZER_OPTIONS',
    'PACEMAKER_DEFAULTS',
    'PLUGIN_OWNED_KEYS',
    'TEMPLATE_BLOCKS',
    'TEMPLATE_KAPPA',
    'BackendSettings',
    'BondSpec',
    'DataSettings',
    'EmbeddingSpec',
    'FitSettings',
    'FunctionSpec',
    'LossSpec',
    'LossWeights',
    'PacemakerSettings',
    'PotentialSettings',
    'StrictModel',
    'WeightingSpec',
    'first_error_location',
    'ignored_keys',
    'settings_validator',
)

VALID_ELEMENTS = frozenset(chemical_symbols[1:])
BLOCK_KEYWORDS = ('ALL', 'UNARY', 'BINARY', 'TERNARY', 'QUATERNARY', 'QUINARY')
BOND_KEYWORDS = ('ALL', 'UNARY', 'BINARY')
EMBEDDING_KEYWORDS = ('ALL', 'UNARY')
ELEMENT_PATTERN = re.compile(r'[A-Z][a-z]?')

#: Pacemaker 0.4's own values for keys the plugin reads back (``pyace/generalfit.py``, ``fitadapter.py``).
PACEMAKER_DEFAULTS: dict[str, Any] = {
    'seed': 42,
    'fit.maxiter': 100,
    'fit.optimizer': 'BFGS',
    'fit.loss.kappa': 0.0,
    'backend.batch_size': 10,
    'backend.display_step': 20,
}

#: The basis blocks of pacemaker's own ``input_template.yaml`` (``pacemaker -t``), filled where the user gave none.
#: ``rcut`` is the template's suggested 7.0 Å.
TEMPLATE_BLOCKS: dict[str, dict[str, Any]] = {
    'embeddings': {'ALL': {'npot': 'FinnisSinclairShiftedScaled', 'fs_parameters': [1, 1, 1, 0.5], 'ndensity': 2}},
    'bonds': {
        'ALL': {'radbase': 'SBessel', 'radparameters': [5.25], 'rcut': 7.0, 'dcut': 0.01, 'NameOfCutoffFunction': 'cos'}
    },
    'functions': {
        'UNARY': {'nradmax_by_orders': [15, 6, 4, 3, 2, 2], 'lmax_by_orders': [0, 3, 3, 2, 2, 1]},
        'BINARY': {'nradmax_by_orders': [15, 6, 3, 2, 2, 1], 'lmax_by_orders': [0, 3, 2, 1, 1, 0]},
        'TERNARY': {'nradmax_by_orders': [15, 3, 3, 2, 1], 'lmax_by_orders': [0, 2, 2, 1, 1]},
        'ALL': {'nradmax_by_orders': [15, 3, 2, 1, 1], 'lmax_by_orders': [0, 2, 2, 1, 1]},
    },
}

#: ``fit.loss.kappa`` of pacemaker's template, filled where neither it nor ``loss_weights`` is given: pacemaker's own
#: fallback (0) fits energies only and ignores the forces of the data.
TEMPLATE_KAPPA = 0.3

#: Keys of ``input.yaml`` that the plugin writes itself, and the input to use instead.
PLUGIN_OWNED_KEYS: dict[tuple[str, str], str] = {
    ('data', 'filename'): 'the `training_set` input (a TrainingSetData node)',
    ('data', 'test_filename'): 'the `test_set` input (a TrainingSetData node)',
    ('data', 'datapath'): 'the `training_set` / `test_set` inputs (the plugin writes the files itself)',
    ('fit', 'callbacks'): 'nothing: callbacks run arbitrary code and are not supported',
    ('potential', 'initial_potential'): 'the `initial_potential` input (a B-basis YAML SinglefileData)',
    ('potential', 'filename'): 'the `initial_potential` input (a B-basis YAML SinglefileData)',
}

#: Keys pacemaker 0.4 reads and ignores: dropped, with the reason, before validation.
IGNORED_KEYS: dict[tuple[str, ...], str] = {
    ('cutoff',): (
        "pacemaker ignores the top-level 'cutoff' (deprecated: the neighbour cutoff is the largest "
        'potential.bonds.*.rcut); set rcut in the bond blocks'
    ),
    ('fit', 'loss', 'w1_coeffs'): 'pacemaker 0.4 takes fit.loss.w1_coeffs through **kwargs and ignores it',
    ('fit', 'loss', 'w2_coeffs'): 'pacemaker 0.4 takes fit.loss.w2_coeffs through **kwargs and ignores it',
}

#: numpy's seeds (``np.random.seed``) must lie in [0, 2**32).
SEED_MAX = 2**32 - 1
#: Below this ``deltaSplineBins`` the spline tables (rcut / deltaSplineBins points per function) exhaust memory.
MIN_DELTA_SPLINE_BINS = 1e-5

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
PositiveInt = Annotated[StrictInt, Field(gt=0)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
Identifier = Annotated[str, Field(pattern=r'^[A-Za-z_][A-Za-z0-9_]*$')]


def validate_element(symbol: str) -> str:
    """Return ``symbol`` if it is a chemical element symbol, else raise ``ValueError``."""
    if symbol not in VALID_ELEMENTS:
        raise ValueError(f'{symbol!r} is not a chemical element symbol')
    return symbol


def block_elements(key: str) -> list[str]:
    """The elements named by a basis block key (``'Cu'``, ``'AlNi'``, ``'(Al, Ni)'``); none for keywords."""
    if key in BLOCK_KEYWORDS:
        return []
    return ELEMENT_PATTERN.findall(key)


def validate_block_key(key: str, keywords: tuple[str, ...] = BLOCK_KEYWORDS, max_elements: int = 5) -> str:
    """Return ``key`` if it names a basis block: one of ``keywords`` or up to ``max_elements`` element symbols."""
    if key in keywords:
        return key
    elements = ELEMENT_PATTERN.findall(key)
    if (
        0 < len(elements) <= max_elements
        and all(symbol in VALID_ELEMENTS for symbol in elements)
        and re.sub(r'[\s(),]', '', key) == ''.join(elements)
    ):
        return key
    raise ValueError(
        f'block key {key!r} must be one of {", ".join(keywords)} or at most {max_elements} element symbols '
        '(e.g. Al, AlNi)'
    )


class StrictModel(BaseModel):
    """Base: unknown keys are errors, assignments are validated, NaN/inf refused, nothing has a default."""

    model_config = ConfigDict(
        extra='forbid',
        validate_assignment=True,
        populate_by_name=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
    )

    def to_input(self) -> dict[str, Any]:
        """Return the plain dictionary as pacemaker reads it (aliases; absent keys stay absent)."""
        return self.model_dump(mode='json', by_alias=True, exclude_none=True)


class LossWeights(StrictModel):
    """The seed's loss weights, mapped honestly onto pacemaker's loss.

    Pacemaker minimises ``(1 - kappa) * sum_s w_e (dE_s / N_s)^2 + kappa * sum_i w_f |dF_i|^2 + L1 + L2``: one
    ``kappa`` splits the weight between per-atom energies and forces. Weights ``(energy, forces)`` therefore map
    to ``kappa = forces / (energy + forces)``; only their ratio matters (the regularisation terms are unscaled).
    Pacemaker cannot fit stress (python-ace issue 90): ``stress`` is kept for a backend that can, its default
    ``None`` means "not fitted", and any positive stress weight is refused rather than silently dropped.
    """

    energy: NonNegativeFloat = 0.7
    """Weight of the energies (relative); with ``forces`` it sets ``fit.loss.kappa = forces / (energy + forces)``."""
    forces: NonNegativeFloat = 0.3
    """Weight of the forces (relative); see ``energy``."""
    stress: NonNegativeFloat | None = None
    """Refused when non-zero: pacemaker 0.4 does not fit stress."""

    @model_validator(mode='after')
    def _check(self) -> LossWeights:
        if self.energy + self.forces <= 0:
            raise ValueError('loss_weights: energy and forces weights cannot both be zero')
        if self.stress:
            raise ValueError(
                f'loss_weights.stress={self.stress}: pacemaker cannot fit stress (its loss has only energy and force '
                'terms, python-ace issue 90); set stress to None (not fitted) or 0'
            )
        return self

    def to_kappa(self) -> float:
        """Return pacemaker's ``kappa`` (the force weight) for these weights."""
        return self.forces / (self.energy + self.forces)


class EmbeddingSpec(StrictModel):
    """One ``potential.embeddings`` block (pacemaker's C++ defaults apply to what is absent)."""

    npot: Literal['FinnisSinclair', 'FinnisSinclairShiftedScaled'] | None = None
    """The embedding function F(rho): ``FinnisSinclair`` or ``FinnisSinclairShiftedScaled``."""
    fs_parameters: Annotated[list[FiniteFloat], Field(min_length=2)] | None = None
    """Per density a pair [coefficient, exponent]: 2 x ``ndensity`` numbers."""
    ndensity: PositiveInt | None = None
    """Number of densities (atomic properties) summed per atom."""
    rho_core_cut: NonNegativeFloat | None = None
    """Density above which the core-repulsion energy takes over."""
    drho_core_cut: NonNegativeFloat | None = None
    """Width of the transition at ``rho_core_cut``."""

    @model_validator(mode='after')
    def _check(self) -> EmbeddingSpec:
        if self.fs_parameters is not None and self.ndensity is not None:
            if len(self.fs_parameters) != 2 * self.ndensity:
                raise ValueError(
                    f'fs_parameters has {len(self.fs_parameters)} values but ndensity={self.ndensity} needs '
                    f'{2 * self.ndensity} (two per density)'
                )
        return self


class BondSpec(StrictModel):
    """One ``potential.bonds`` block (radial basis and cutoffs, in Å)."""

    radbase: Literal['SBessel', 'ChebExpCos', 'ChebPow', 'ChebLinear'] | None = None
    """The radial basis family: SBessel (simplified Bessel), ChebExpCos, ChebPow or ChebLinear."""
    radparameters: Annotated[list[FiniteFloat], Field(min_length=1)] | None = None
    """Parameters of the radial basis (e.g. SBessel's lambda)."""
    rcut: PositiveFloat | None = None
    """Cutoff radius of the bond, in Å."""
    dcut: PositiveFloat | None = None
    """Width of the smooth decay to zero at ``rcut``, in Å."""
    NameOfCutoffFunction: Identifier | None = None
    """The smoothing function at ``rcut`` (e.g. ``cos``)."""
    r_in: PositiveFloat | None = None
    """Inner cutoff radius, in Å: below it the core repulsion takes over."""
    delta_in: PositiveFloat | None = None
    """Width of the inner cutoff transition, in Å."""
    inner_cutoff_type: Literal['distance', 'zbl'] | None = None
    """Inner cutoff by ``distance`` or by ``zbl`` (a ZBL core)."""
    core_repulsion: tuple[FiniteFloat, FiniteFloat] | None = Field(default=None, alias='core-repulsion')
    """[prefactor, exponent] of the exponential core repulsion."""
    nradbase: PositiveInt | None = None
    """Number of radial base functions (the first-order functions)."""
    nradmax: PositiveInt | None = None
    """Maximum radial index of the higher-order functions."""
    lmax: NonNegativeInt | None = None
    """Maximum angular momentum."""

    @model_validator(mode='after')
    def _check(self) -> BondSpec:
        if self.r_in is not None and self.rcut is not None and self.r_in >= self.rcut:
            raise ValueError(f'r_in={self.r_in} must be smaller than rcut={self.rcut}')
        return self


class FunctionSpec(StrictModel):
    """One ``potential.functions`` block: radial and angular limits per body order."""

    nradmax_by_orders: Annotated[list[PositiveInt], Field(min_length=1)]
    """Maximum radial index per body order (first entry: order 1)."""
    lmax_by_orders: Annotated[list[NonNegativeInt], Field(min_length=1)]
    """Maximum angular momentum per body order."""
    coefs_init: Literal['zero', 'random'] | None = None
    """Initial coefficients of the functions: ``zero`` or ``random``."""

    @model_validator(mode='after')
    def _check(self) -> FunctionSpec:
        if len(self.nradmax_by_orders) != len(self.lmax_by_orders):
            raise ValueError(
                f'nradmax_by_orders ({len(self.nradmax_by_orders)} orders) and lmax_by_orders '
                f'({len(self.lmax_by_orders)} orders) must have the same length'
            )
        return self


class FunctionsSettings(BaseModel):
    """``potential.functions``: ``number_of_functions_per_element`` and blocks (ALL, UNARY, ..., ``AlNi``)."""

    model_config = ConfigDict(
        extra='allow', validate_assignment=True, allow_inf_nan=False, use_attribute_docstrings=True
    )

    number_of_functions_per_element: PositiveInt | None = None
    """Keep this many basis functions per element, the lowest orders first; absent: every function of the blocks."""

    @model_validator(mode='before')
    @classmethod
    def _blocks(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        result = {}
        for key, value in data.items():
            if key == 'number_of_functions_per_element':
                result[key] = value
            else:
                validate_block_key(str(key))
                named = block_elements(str(key))
                if len(set(named)) != len(named):
                    raise ValueError(
                        f'function block {key!r} names an element twice: a block names its central element, then '
                        f'the other elements of its neighbours, each once (e.g. CuAl); pacemaker fails on it'
                    )
                result[key] = FunctionSpec.model_validate(value)
        return result

    @property
    def blocks(self) -> dict[str, FunctionSpec]:
        """The function blocks given (without ``number_of_functions_per_element``)."""
        return dict(self.__pydantic_extra__ or {})

    def to_input(self) -> dict[str, Any]:
        document: dict[str, Any] = (
            {}
            if self.number_of_functions_per_element is None
            else {'number_of_functions_per_element': self.number_of_functions_per_element}
        )
        document.update({key: spec.to_input() for key, spec in self.blocks.items()})
        return document


BlockKey = Annotated[str, Field(min_length=1)]


class PotentialSettings(StrictModel):
    """``potential``: the ACE basis."""

    deltaSplineBins: Annotated[float, Field(ge=MIN_DELTA_SPLINE_BINS, allow_inf_nan=False)] | None = None
    """Bin width of the splines of the radial functions, in Å (pacemaker: 0.001)."""
    elements: list[str] | None = Field(default=None, description='default: the elements of the training data')
    embeddings: dict[BlockKey, EmbeddingSpec] | None = None
    """Embedding blocks, by ``ALL``, ``UNARY`` or an element."""
    bonds: dict[BlockKey, BondSpec] | None = None
    """Bond (radial) blocks, by ``ALL``, ``UNARY``, ``BINARY`` or an element pair such as ``AlNi``."""
    functions: FunctionsSettings | None = None
    """Function blocks (``ALL``, ``UNARY`` ... ``QUINARY`` or element combinations) and their number."""
    overwrite_blocks_from_initial_bbasis: StrictBool | None = None
    """When continuing from an initial potential: take the blocks from it."""

    @field_validator('embeddings', 'bonds')
    @classmethod
    def _check_block_keys(cls, blocks: dict | None, info: ValidationInfo) -> dict | None:
        """Embedding blocks name one element (or ALL/UNARY), bond blocks one or two (or ALL/UNARY/BINARY)."""
        keywords, most = (EMBEDDING_KEYWORDS, 1) if info.field_name == 'embeddings' else (BOND_KEYWORDS, 2)
        for key in blocks or {}:
            validate_block_key(key, keywords, max_elements=most)
        return blocks

    @field_validator('elements')
    @classmethod
    def _check_elements(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError('elements must not be empty (omit it to take the elements of the training data)')
        for symbol in value:
            validate_element(symbol)
        if len(set(value)) != len(value):
            raise ValueError(f'elements {value} contains duplicates')
        return value

    @model_validator(mode='after')
    def _check_block_elements(self) -> PotentialSettings:
        if self.elements is None:
            return self
        for section in ('embeddings', 'bonds', 'functions'):
            value = getattr(self, section)
            keys = value.blocks if isinstance(value, FunctionsSettings) else (value or {})
            for key in keys:
                unknown = sorted(set(block_elements(key)) - set(self.elements))
                if unknown:
                    raise ValueError(
                        f'potential.{section}.{key} names {", ".join(unknown)}, which is not among the elements '
                        f'{self.elements} (pacemaker fails on it after start-up)'
                    )
        return self

    def to_input(self) -> dict[str, Any]:
        document = super().to_input()
        if self.functions is not None:
            document['functions'] = self.functions.to_input()
        return document


class LossSpec(StrictModel):
    """``fit.loss``: force weight ``kappa`` (energy weight is ``1 - kappa``) and regularisation."""

    kappa: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | Literal['auto'] | None = None
    """Weight of forces against energies: 0 energies only (pacemaker's default), 1 forces only; ``auto``: from data."""
    L1_coeffs: NonNegativeFloat | None = None
    """L1 regularisation of the basis coefficients."""
    L2_coeffs: NonNegativeFloat | None = None
    """L2 regularisation of the basis coefficients."""
    w0_rad: NonNegativeFloat | None = None
    """Radial smoothness regularisation (the functions themselves)."""
    w1_rad: NonNegativeFloat | None = None
    """Radial smoothness regularisation (first derivatives)."""
    w2_rad: NonNegativeFloat | None = None
    """Radial smoothness regularisation (second derivatives)."""
    w_orth: NonNegativeFloat | None = None
    """Orthogonality regularisation of the radial functions."""


class WeightingSpec(StrictModel):
    """``fit.weighting``: pacemaker's ``EnergyBasedWeightingPolicy`` (without it: uniform weights).

    Pacemaker requires ``type``; every other key absent keeps pacemaker's own value (e.g. no ``DFup`` cut).
    """

    type: Literal['EnergyBasedWeightingPolicy']
    """``EnergyBasedWeightingPolicy``: more weight to structures near the lowest energy."""
    nfit: PositiveInt | None = None
    """Keep this many structures, sampled by energy."""
    cutoff: PositiveFloat | None = None
    """Neighbour cutoff used to find the reference (bulk) energies, in Å."""
    DElow: PositiveFloat | None = None
    """Energy above the reference (eV/atom) below which structures share the weight ``wlow``."""
    DEup: PositiveFloat | None = None
    """Energy above the reference (eV/atom) beyond which structures are dropped."""
    DFup: PositiveFloat | None = None
    """Structures with a force component above this (eV/Å) are dropped."""
    DE: PositiveFloat | None = None
    """Energy shift in the weight formula (eV/atom)."""
    DF: PositiveFloat | None = None
    """Force shift in the weight formula (eV/Å)."""
    wlow: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    """Fraction of the total weight given to the structures below ``DElow``."""
    n_lower: PositiveInt | None = None
    """Structures sampled below ``DElow`` (with ``nfit``)."""
    n_upper: PositiveInt | None = None
    """Structures sampled above ``DElow`` (with ``nfit``)."""
    reftype: Literal['all', 'bulk', 'cluster'] | None = None
    """Which structures set the reference energy: ``all``, ``bulk`` or ``cluster``."""
    energy: Literal['convex_hull', 'cohesive'] | None = None
    """Energy the weights use: distance to the ``convex_hull`` or the ``cohesive`` energy."""
    seed: Annotated[StrictInt, Field(ge=0, le=SEED_MAX)] | None = None
    """Seed of the sampling."""

    @model_validator(mode='after')
    def _check(self) -> WeightingSpec:
        low, up = self.DElow if self.DElow is not None else 1.0, self.DEup if self.DEup is not None else 10.0
        if low >= up:
            raise ValueError(f'DElow={low} must be smaller than DEup={up}')
        # pacemaker's EnergyBasedWeightingPolicy.generate_weights: nfit alone, or n_lower and n_upper together
        tiers = [name for name in ('n_lower', 'n_upper') if getattr(self, name) is not None]
        if self.nfit is not None and tiers:
            raise ValueError(
                f'nfit cannot be combined with {" and ".join(tiers)} (pacemaker refuses it after start-up): give '
                'nfit alone, or n_lower and n_upper together (nfit is then their sum)'
            )
        if len(tiers) == 1:
            raise ValueError(
                f'{tiers[0]} needs its partner: give n_lower and n_upper together, or nfit alone (pacemaker '
                'refuses one of them alone after start-up)'
            )
        return self


#: The options each optimiser takes (pacemaker passes ``fit.options`` to ``scipy.optimize.minimize``), with their
#: kind: ``float`` (> 0), ``tolerance`` (>= 0), ``int`` (> 0) or ``bool``. From scipy's ``_minimize_bfgs`` /
#: ``_minimize_cg`` / ``_minimize_lbfgsb``; left out: ``maxiter`` (pacemaker overwrites it with ``fit.maxiter``),
#: ``hess_inv0`` (an array), ``workers`` (unused with pacemaker's analytic gradient) and L-BFGS-B's ``disp`` /
#: ``iprint`` (deprecated by scipy).
OPTIMIZER_OPTIONS: dict[str, dict[str, str]] = {
    'BFGS': {
        'gtol': 'tolerance',
        'norm': 'float',
        'eps': 'float',
        'xrtol': 'tolerance',
        'c1': 'float',
        'c2': 'float',
        'finite_diff_rel_step': 'float',
        'disp': 'bool',
        'return_all': 'bool',
    },
    'L-BFGS-B': {
        'maxcor': 'int',
        'ftol': 'tolerance',
        'gtol': 'tolerance',
        'eps': 'float',
        'maxfun': 'int',
        'maxls': 'int',
        'finite_diff_rel_step': 'float',
    },
    'CG': {
        'gtol': 'tolerance',
        'norm': 'float',
        'eps': 'float',
        'c1': 'float',
        'c2': 'float',
        'finite_diff_rel_step': 'float',
        'disp': 'bool',
        'return_all': 'bool',
    },
}
#: scipy's default line-search constants (c1, c2) of the optimisers that take them.
LINE_SEARCH_DEFAULTS: dict[str, tuple[float, float]] = {'BFGS': (1e-4, 0.9), 'CG': (1e-4, 0.4)}
#: Optimisers pacemaker 0.4 (tensorpotential 0.6, scipy 1.17) accepts by name but fails with (measured by the fuzz
#: test's one-iteration fits, ``tests/fuzz``), and why.
_LEAST_SQUARES = (
    'pacemaker 0.4 fails in its least-squares path (TensorFlow InvalidArgumentError in TensorScatterUpdate)'
)
BROKEN_OPTIMIZERS: dict[str, str] = {
    'Adam': 'pacemaker 0.4 runs the whole fit with it and then fails (res_opt is None, python-ace fitadapter.py)',
    'SGD': 'pacemaker 0.4 runs the whole fit with it and then fails (res_opt is None, python-ace fitadapter.py)',
    'trf': _LEAST_SQUARES,
    'dogbox': _LEAST_SQUARES,
    'lm': _LEAST_SQUARES,
    'dual_annealing': (
        "pacemaker 0.4 calls scipy's dual_annealing with local_search_options, which scipy >= 1.14 no longer takes "
        '(TypeError at the start of the fit)'
    ),
}


def optimizer_options_problem(optimizer: str, options: dict[str, Any]) -> str | None:
    """A one-line message when ``options`` are not options of ``optimizer`` (as pacemaker hands them to scipy)."""
    allowed = OPTIMIZER_OPTIONS.get(optimizer)
    if allowed is None:
        return None
    if 'maxiter' in options:
        return 'options.maxiter is overwritten by pacemaker with fit.maxiter: set fit.maxiter instead'
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        return (
            f'{", ".join(unknown)} {"is not an option" if len(unknown) == 1 else "are not options"} of optimizer '
            f'{optimizer!r} (scipy only warns and ignores it); allowed: {", ".join(allowed)}'
        )
    for key, value in options.items():
        kind = allowed[key]
        if kind == 'bool' and not isinstance(value, bool):
            return f'options.{key} must be true or false, not {value!r}'
        if kind == 'int' and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            return f'options.{key} must be a positive integer, not {value!r}'
        if kind in ('float', 'tolerance') and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f'options.{key} must be a number, not {value!r}'
        if kind == 'float' and value <= 0:
            return f'options.{key} must be positive, not {value!r}'
        if kind == 'tolerance' and value < 0:
            return f'options.{key} must not be negative, not {value!r}'
    if optimizer in LINE_SEARCH_DEFAULTS:
        default_c1, default_c2 = LINE_SEARCH_DEFAULTS[optimizer]
        c1, c2 = options.get('c1', default_c1), options.get('c2', default_c2)
        if not 0 < c1 < c2 < 1:
            return f'options c1={c1} and c2={c2} must satisfy 0 < c1 < c2 < 1 (scipy refuses them)'
    return None


TrainableKey = Annotated[
    str, Field(pattern=r'^(ALL|UNARY|BINARY|TERNARY|QUATERNARY|QUINARY|[A-Z][a-z]?([A-Z][a-z]?)*)$')
]
TrainableValue = Literal['func', 'radial', 'all']


class FitSettings(StrictModel):
    """``fit``: loss, weighting, optimiser and iteration control."""

    loss: LossSpec | None = None
    """The loss: force weight and regularisation."""
    weighting: WeightingSpec | None = None
    """Weights of the structures (absent: uniform)."""
    optimizer: Literal['BFGS', 'L-BFGS-B', 'CG'] | None = None
    """The optimiser: scipy's ``BFGS`` (pacemaker's default), ``L-BFGS-B`` or ``CG``. The other names pacemaker 0.4
    knows fail inside it (:data:`BROKEN_OPTIMIZERS`) and are refused."""
    options: dict[Identifier, FiniteFloat | StrictInt | StrictBool] | None = None
    """scipy's options of the optimiser (:data:`OPTIMIZER_OPTIONS`, e.g. ``gtol``, ``maxcor`` for L-BFGS-B);
    with any options pacemaker drops its own ``gtol: 1e-8`` (scipy's 1e-5 applies unless given)."""
    maxiter: PositiveInt | None = None
    """Iterations of the optimiser (per ladder step and fit cycle); pacemaker: 100."""
    repulsion: Literal['auto'] | None = None
    """``auto``: add and fit a core repulsion (ZBL-like) from the data."""
    trainable_parameters: (
        TrainableValue
        | TrainableKey
        | list[TrainableValue | TrainableKey]
        | dict[TrainableKey, TrainableValue | list[TrainableValue]]
        | None
    ) = None
    """Which parameters are fitted: ``func``, ``radial``, ``all`` (per element or block)."""
    ladder_step: (
        PositiveInt
        | Annotated[float, Field(gt=0.0, lt=1.0)]
        | tuple[PositiveInt, Annotated[float, Field(gt=0.0, lt=1.0)]]
        | None
    ) = None
    """Grow the basis in steps: functions added per step (a number, a fraction, or both)."""
    ladder_type: Literal['body_order', 'power_order'] | None = None
    """Order in which the ladder adds functions: ``body_order`` or ``power_order``."""
    fit_cycles: PositiveInt | None = None
    """Repeat the fit this many times, perturbing the coefficients between cycles."""
    noise_relative_sigma: NonNegativeFloat | None = None
    """Relative noise added to the coefficients between fit cycles."""
    noise_absolute_sigma: NonNegativeFloat | None = None
    """Absolute noise added to the coefficients between fit cycles."""
    randomize_func_coeffs: NonNegativeFloat | None = None
    """Randomise the initial function coefficients with this scale."""
    min_relative_train_loss_per_iter: NonNegativeFloat | None = None
    """Stop when the training loss improves by less than this fraction per iteration."""
    min_relative_test_loss_per_iter: NonNegativeFloat | None = None
    """Stop when the test loss improves by less than this fraction per iteration."""
    early_stopping_patience: PositiveInt | None = None
    """Iterations without a better test loss before stopping."""

    @field_validator('optimizer', mode='before')
    @classmethod
    def _refuse_broken_optimizers(cls, value: Any) -> Any:
        if isinstance(value, str) and value in BROKEN_OPTIMIZERS:
            raise ValueError(
                f'optimizer {value!r} is refused: {BROKEN_OPTIMIZERS[value]}; use one of {", ".join(OPTIMIZER_OPTIONS)}'
            )
        return value

    @model_validator(mode='after')
    def _check_options(self) -> FitSettings:
        if self.options is not None:
            message = optimizer_options_problem(self.optimizer or PACEMAKER_DEFAULTS['fit.optimizer'], self.options)
            if message:
                raise ValueError(message)
        return self

    @property
    def effective_maxiter(self) -> int:
        """The number of iterations pacemaker will run (its default when absent)."""
        return self.maxiter if self.maxiter is not None else PACEMAKER_DEFAULTS['fit.maxiter']


class GpuConfig(StrictModel):
    """``backend.gpu_config``."""

    gpu_ind: StrictInt | None = None
    """The GPU to use (-1: none)."""
    mem_limit: NonNegativeInt | None = None
    """GPU memory limit in MB (0: no limit)."""


class BackendSettings(StrictModel):
    """``backend``: the evaluator and batching."""

    evaluator: Literal['tensorpot', 'pyace'] | None = None
    """``tensorpot`` (TensorFlow, analytic gradients; filled when absent) or ``pyace`` (finite differences)."""
    batch_size: PositiveInt | None = None
    """Structures evaluated at once (pacemaker: 10); smaller uses less memory."""
    batch_size_reduction: StrictBool | None = None
    """On running out of memory, divide the batch and try again."""
    batch_size_reduction_factor: Annotated[float, Field(gt=1.0, allow_inf_nan=False)] | None = None
    """The divisor of that reduction."""
    display_step: PositiveInt | None = None
    """Log the metrics every this many iterations (pacemaker: 20)."""
    gpu_config: GpuConfig | None = None
    """GPU selection and memory limit for TensorFlow."""
    imagetype: Literal['png', 'pdf', 'svg', 'jpg'] | None = None
    """Format of pacemaker's own plots."""
    parallel_mode: Literal['serial', 'process'] | None = None
    """Build the neighbour lists ``serial`` or in ``process`` (processes)."""
    n_workers: PositiveInt | None = None
    """Processes for the neighbour lists."""

    @property
    def effective_batch_size(self) -> int:
        """The batch size pacemaker will use (its default when absent)."""
        return self.batch_size if self.batch_size is not None else PACEMAKER_DEFAULTS['backend.batch_size']


ReferenceEnergy = Literal['auto', 'VASP_PBE_500_0.125_0.1_NM'] | FiniteFloat | dict[str, FiniteFloat]


class DataSettings(StrictModel):
    """``data``: what pacemaker does with the dataset the plugin writes (file names are the plugin's)."""

    test_size: Annotated[float, Field(gt=0.0, lt=1.0)] | PositiveInt | None = None
    """Held out by pacemaker: a fraction (< 1) or a number of structures (the workflows split themselves)."""
    reference_energy: ReferenceEnergy | None = None
    """Energies subtracted per atom before the fit (per element, ``auto``, or a preset); the potential's E0."""
    ignore_weights: StrictBool | None = None
    """Ignore weights stored in the data."""
    aug_factor: NonNegativeFloat | None = None
    """Factor of pacemaker's data augmentation."""
    seed: Annotated[StrictInt, Field(ge=0, le=SEED_MAX)] | None = None
    """Seed of pacemaker's train/test split."""

    @field_validator('reference_energy')
    @classmethod
    def _check_reference(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key in value:
                if key != 'shift':
                    validate_element(key)
        return value


#: Keys every element's embedding and every element pair's bond must get from some block (ALL, UNARY, BINARY or
#: the block named by the elements): without them pacemaker fails after start-up (KeyError 'ndensity', "Number of
#: fs_parameters = 0", a segmentation fault without radparameters, a cutoff of 0 without rcut).
REQUIRED_BLOCK_KEYS = {'embeddings': ('ndensity', 'fs_parameters'), 'bonds': ('radparameters', 'rcut')}


def _applies(key: str, elements: tuple[str, ...]) -> bool:
    """Whether the basis block ``key`` applies to the embedding of one element or the bond of a pair."""
    if key == 'ALL':
        return True
    if key == 'UNARY':
        return len(set(elements)) == 1
    if key == 'BINARY':
        return len(set(elements)) == 2
    named = block_elements(key)
    return sorted(named) == sorted(elements) or (len(set(elements)) == 1 and named == [elements[0]])


def _check_unary_function_blocks(potential: PotentialSettings, species_blocks: dict[tuple[str, ...], dict]) -> None:
    """Every element needs a one-element function block (ALL, UNARY or its own): pacemaker takes each element's
    ``ndensity`` from those blocks and fails after start-up without one (``element_ndensity_dict neither provided
    nor constructed``, or a ``KeyError`` naming the element)."""
    missing = [element for element in potential.elements or [] if (element,) not in species_blocks]
    if missing:
        raise ValueError(
            f'potential.functions: no block gives the functions of {", ".join(missing)} alone (pacemaker fails on '
            f'it after start-up); add an ALL or UNARY block, or a block named by each element'
        )


#: The number of elements of each n-ary keyword's blocks (UNARY 1, BINARY 2, ...).
NARY_ORDER = {keyword: size for size, keyword in enumerate(BLOCK_KEYWORDS[1:], start=1)}


def _species_keys(elements: list[str], size: int) -> list[tuple[str, ...]]:
    """Pacemaker's function block keys of ``size`` elements: a central element and the others sorted."""
    keys = set()
    for element in elements:
        rest = [other for other in elements if other != element]
        for combination in itertools.product(rest, repeat=size - 1):
            key = (element, *dict.fromkeys(sorted(combination)))
            if len(key) == size:
                keys.add(key)
    return sorted(keys)


def _function_blocks_by_species(potential: PotentialSettings) -> dict[tuple[str, ...], dict[str, list[int]]]:
    """The function limits of every species block, merged as pacemaker merges them (ALL, then the n-ary keywords,
    then the blocks named by elements)."""
    elements = sorted(potential.elements or [])
    blocks = {key: spec.to_input() for key, spec in (potential.functions.blocks if potential.functions else {}).items()}
    merged: dict[tuple[str, ...], dict[str, list[int]]] = {}
    if 'ALL' in blocks:
        for size in range(1, len(elements) + 1):
            for key in _species_keys(elements, size):
                merged.setdefault(key, {}).update(blocks['ALL'])
    for keyword, size in NARY_ORDER.items():
        if keyword in blocks:
            for key in _species_keys(elements, size):
                merged.setdefault(key, {}).update(blocks[keyword])
    for name, block in blocks.items():
        if name not in BLOCK_KEYWORDS:
            merged.setdefault(tuple(block_elements(name)), {}).update(block)
    return merged


def _check_bond_limits(potential: PotentialSettings, species_blocks: dict[tuple[str, ...], dict]) -> None:
    """A bond that fixes ``nradbase`` / ``nradmax`` / ``lmax`` below what the function blocks of its elements use
    fails in pacemaker after start-up (``Given nradbase=3 for bond ('Al', 'Al') is less than nradbasemax=15``)."""
    elements = sorted(potential.elements or [])
    given: dict[tuple[str, str], dict[str, int]] = {
        (first, second): {} for first, second in itertools.product(elements, repeat=2)
    }
    bonds = {key: spec.to_input() for key, spec in (potential.bonds or {}).items()}
    order = [key for key in ('ALL', 'UNARY', 'BINARY') if key in bonds] + [k for k in bonds if k not in BOND_KEYWORDS]
    for key in order:  # pacemaker's merge order: the keywords, then the blocks named by elements
        for pair in given:
            if _applies(key, pair):
                given[pair].update(
                    {name: value for name, value in bonds[key].items() if name in ('nradbase', 'nradmax', 'lmax')}
                )
    for species, block in species_blocks.items():
        if 'nradmax_by_orders' not in block or 'lmax_by_orders' not in block:
            continue
        needed = {
            'nradbase': max(block['nradmax_by_orders'][:1]),
            'nradmax': max(block['nradmax_by_orders'][1:], default=0),
            'lmax': max(block['lmax_by_orders']),
        }
        pairs = [(species[0], species[0])] if len(species) == 1 else [(species[0], other) for other in species[1:]]
        for pair in pairs:
            for name, value in given.get(pair, {}).items():
                if value < needed[name]:
                    raise ValueError(
                        f'potential.bonds: {name}={value} for the {"-".join(pair)} bond is below the {needed[name]} '
                        f'that the function block {"".join(species)} needs (pacemaker fails on it after start-up); '
                        f'raise {name} or leave it out (pacemaker takes it from the functions)'
                    )


def _check_function_shares(potential: PotentialSettings, blocks: dict[tuple[str, ...], dict]) -> None:
    """Pacemaker keeps ``number_of_functions_per_element // blocks`` functions in each of an element's ``blocks``:
    fewer than one per block leaves a potential without functions (and no error)."""
    kept = potential.functions.number_of_functions_per_element if potential.functions is not None else None
    for element in sorted(potential.elements or []):
        shares = sum(species[0] == element for species in blocks)
        if kept is not None and 0 < kept < shares:
            raise ValueError(
                f'potential.functions.number_of_functions_per_element={kept} is shared out over the {shares} function '
                f'blocks of {element} (pacemaker keeps {kept} // {shares} = 0 functions in each: a potential without '
                f'functions); give at least {shares}, or fewer blocks'
            )


def _check_reverse_function_blocks(blocks: dict[tuple[str, ...], dict]) -> None:
    """Pacemaker 0.4 symmetrises the bonds of its function ``blocks`` and fails (``RuntimeError: dictionary changed
    size during iteration``) where a block centred on A has B neighbours but no block centred on B has A neighbours,
    and (``map::at``) where only a block of three or more elements gives A atoms B neighbours."""
    bonds = {(species[0], other) for species in blocks for other in species[1:]}
    for first, second in sorted(bonds):
        if (first, second) not in blocks:
            raise ValueError(
                f'potential.functions: a block of three or more elements gives {first} atoms {second} neighbours but '
                f'no block {first}{second} does (pacemaker fails on it after start-up: map::at); add a BINARY block'
            )
        if (second, first) not in bonds:
            raise ValueError(
                f'potential.functions: a block gives {first} atoms {second} neighbours but none gives {second} atoms '
                f'{first} neighbours (pacemaker 0.4 fails on it after start-up); add the block {second}{first}, or '
                f'use BINARY or ALL'
            )


def _check_required_block_keys(potential: PotentialSettings) -> None:
    species_blocks = _function_blocks_by_species(potential)
    _check_unary_function_blocks(potential, species_blocks)
    built = {  # the blocks that get functions: at least one function per neighbour element
        species: block
        for species, block in species_blocks.items()
        if len(block.get('nradmax_by_orders', [])) >= len(species) - 1
    }
    _check_function_shares(potential, built)
    _check_reverse_function_blocks(built)
    _check_bond_limits(potential, species_blocks)
    elements = potential.elements or []
    targets: dict[str, list[tuple[str, ...]]] = {
        'embeddings': [(element,) for element in elements],
        'bonds': [(first, second) for index, first in enumerate(elements) for second in elements[index:]],
    }
    for section, keys in REQUIRED_BLOCK_KEYS.items():
        blocks = getattr(potential, section) or {}
        for target in targets[section]:
            for key in keys:
                if not any(getattr(spec, key) is not None for name, spec in blocks.items() if _applies(name, target)):
                    raise ValueError(
                        f'potential.{section}: no block gives {key} for {"-".join(dict.fromkeys(target))} (pacemaker '
                        f'fails on it after start-up); give {key} in the ALL block or in the block of those elements'
                    )


def _parent_of(data: Any, path: tuple[str, ...]) -> dict | None:
    """The mapping that holds the last key of ``path`` in nested ``data`` (``None`` where the path breaks off)."""
    for part in path[:-1]:
        data = data.get(part) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else None


def ignored_keys(raw: Any) -> list[str]:
    """Return the messages for the keys of ``raw`` settings that pacemaker reads and ignores (they are dropped)."""
    return [
        f'{".".join(path)} dropped: {reason}'
        for path, reason in IGNORED_KEYS.items()
        if path[-1] in (_parent_of(raw, path) or {})
    ]


def _drop_ignored(data: dict) -> dict:
    data = copy.deepcopy(data)
    for path in IGNORED_KEYS:
        (_parent_of(data, path) or {}).pop(path[-1], None)
    return data


def _refuse_owned_keys(data: dict) -> None:
    for (section, key), instead in PLUGIN_OWNED_KEYS.items():
        if isinstance(data.get(section), dict) and key in data[section]:
            raise ValueError(f'{section}.{key} is set by the plugin; use {instead}')
    if isinstance(data.get('potential'), str):
        raise ValueError('potential given as a file name is set by the plugin; use the `initial_potential` input')
    weighting = (data.get('fit') or {}).get('weighting') if isinstance(data.get('fit'), dict) else None
    if isinstance(weighting, dict) and weighting.get('type') == 'ExternalWeightingPolicy':
        raise ValueError(
            'fit.weighting.type ExternalWeightingPolicy reads a file from the job directory, which the plugin '
            'does not ship; use EnergyBasedWeightingPolicy or no weighting (uniform)'
        )


class PacemakerSettings(StrictModel):
    """Everything pacemaker's ``input.yaml`` says, validated. Every key is optional; absent means pacemaker's."""

    seed: Annotated[StrictInt, Field(ge=0, le=SEED_MAX)] | None = None
    """The global random seed (pacemaker: 42)."""
    loss_weights: LossWeights | None = None
    """The plugin's energy/force weights, mapped onto ``fit.loss.kappa`` (not with a kappa)."""
    metadata: dict[Identifier, str] | None = None
    """Free text stored in the potential."""
    potential: PotentialSettings | None = None
    """The ACE basis."""
    fit: FitSettings | None = None
    """The fit: loss, weights, optimiser, iterations."""
    backend: BackendSettings | None = None
    """How the potential is evaluated while fitting."""
    data: DataSettings | None = None
    """Pacemaker's own data options."""

    @model_validator(mode='before')
    @classmethod
    def _before(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        _refuse_owned_keys(data)
        return _drop_ignored(data)

    @model_validator(mode='after')
    def _after(self) -> PacemakerSettings:
        if self.loss_weights is not None and self.fit is not None and self.fit.loss is not None:
            if self.fit.loss.kappa is not None:
                raise ValueError(
                    'give either loss_weights or fit.loss.kappa, not both (loss_weights maps onto kappa = '
                    'forces / (energy + forces))'
                )
        return self

    @property
    def kappa(self) -> float | str:
        """The ``kappa`` pacemaker will use."""
        if self.loss_weights is not None:
            return self.loss_weights.to_kappa()
        if self.fit is not None and self.fit.loss is not None and self.fit.loss.kappa is not None:
            return self.fit.loss.kappa
        return PACEMAKER_DEFAULTS['fit.loss.kappa']

    @property
    def section_fit(self) -> FitSettings:
        return self.fit if self.fit is not None else FitSettings()

    @property
    def section_backend(self) -> BackendSettings:
        return self.backend if self.backend is not None else BackendSettings()

    @property
    def section_data(self) -> DataSettings:
        return self.data if self.data is not None else DataSettings()

    @property
    def section_potential(self) -> PotentialSettings:
        return self.potential if self.potential is not None else PotentialSettings()

    def complete(self, elements: list[str]) -> tuple[PacemakerSettings, dict[str, Any]]:
        """Return ``(settings, filled)``: a copy with what pacemaker requires and the user left out, and what it was.

        Filled: ``potential.elements`` (the data's ``elements``), the ``embeddings`` / ``bonds`` / ``functions``
        blocks (:data:`TEMPLATE_BLOCKS`, pacemaker's template), ``fit.loss.kappa`` (:data:`TEMPLATE_KAPPA`, without
        ``loss_weights``) and ``backend.evaluator`` (``tensorpot``). Nothing the user gave is changed.
        """
        result = self.model_copy(deep=True)
        filled: dict[str, Any] = {}
        potential = result.potential.model_copy(deep=True) if result.potential is not None else PotentialSettings()
        if potential.elements is None:
            potential.elements = sorted(elements)
            filled['potential.elements'] = potential.elements
        if not potential.embeddings:
            potential.embeddings = copy.deepcopy(TEMPLATE_BLOCKS['embeddings'])
            filled['potential.embeddings'] = TEMPLATE_BLOCKS['embeddings']
        if not potential.bonds:
            potential.bonds = copy.deepcopy(TEMPLATE_BLOCKS['bonds'])
            filled['potential.bonds'] = TEMPLATE_BLOCKS['bonds']
        functions = potential.functions if potential.functions is not None else FunctionsSettings()
        if not functions.blocks:
            given = functions.to_input()
            functions = FunctionsSettings.model_validate({**given, **copy.deepcopy(TEMPLATE_BLOCKS['functions'])})
            potential.functions = functions
            filled['potential.functions'] = TEMPLATE_BLOCKS['functions']
        _check_required_block_keys(potential)
        result.potential = potential
        given_kappa = result.fit is not None and result.fit.loss is not None and result.fit.loss.kappa is not None
        if result.loss_weights is None and not given_kappa:
            fit = result.fit.model_copy(deep=True) if result.fit is not None else FitSettings()
            loss = fit.loss.model_copy() if fit.loss is not None else LossSpec()
            loss.kappa = TEMPLATE_KAPPA
            fit.loss = loss
            result.fit = fit
            filled['fit.loss.kappa'] = TEMPLATE_KAPPA
        backend = result.backend.model_copy() if result.backend is not None else BackendSettings()
        if backend.evaluator is None:
            backend.evaluator = 'tensorpot'
            filled['backend.evaluator'] = 'tensorpot'
        result.backend = backend
        return result, filled

    def to_pacemaker_input(self, filename: str, test_filename: str | None = None) -> dict[str, Any]:
        """Return the ``input.yaml`` content as a dictionary, with the plugin's dataset file names.

        ``loss_weights`` is resolved into ``fit.loss.kappa``; sections the user left out are written empty only
        where pacemaker requires them (``potential``, ``data``, ``backend``).
        """
        document = self.to_input()
        document.pop('loss_weights', None)
        if self.potential is not None:
            document['potential'] = self.potential.to_input()
        if self.loss_weights is not None:
            document.setdefault('fit', {}).setdefault('loss', {})['kappa'] = self.kappa
        data = document.setdefault('data', {})
        data['filename'] = filename
        if test_filename is not None:
            data['test_filename'] = test_filename
        document.setdefault('potential', {})
        document.setdefault('backend', {})
        return document

    @classmethod
    def from_pacemaker_input(cls, document: dict[str, Any]) -> PacemakerSettings:
        """Validate a parsed ``input.yaml`` (e.g. rendered from a user's template) against these models."""
        document = {key: (dict(value) if isinstance(value, dict) else value) for key, value in document.items()}
        data = document.get('data')
        if isinstance(data, dict):
            data.pop('filename', None)
            data.pop('test_filename', None)
        return cls.model_validate(document)


def first_error_location(error: Exception) -> str:
    """Return a compact ``loc: message`` summary of a pydantic ``ValidationError`` (or ``str(error)``)."""
    errors = getattr(error, 'errors', None)
    if not callable(errors):
        return str(error)
    lines = []
    for item in errors():
        location = '.'.join(
            str(part) for part in item['loc'] if not re.fullmatch(r'(function-after|function-before)\[.*\]', str(part))
        )
        lines.append(f'{location}: {item["msg"]}' if location else item['msg'])
    return '; '.join(lines)


def settings_validator(model: type[BaseModel], name: str | None = None):
    """A port validator that checks a ``Dict`` against ``model``; the message names ``name`` (default: the model)
    and the first offending key."""
    label = name or model.__name__

    def validate(value, _) -> str | None:
        if value is None:
            return None
        try:
            model.model_validate(value.get_dict())
        except ValueError as exception:  # pydantic's ValidationError, or a validator's own ValueError
            return f'invalid {label}: {first_error_location(exception)}'
        return None

    return validate
