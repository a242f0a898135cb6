"""Validated settings: Pacemaker's ``input.yaml`` as pydantic models, plus the seed's ``LossWeights``.

``PacemakerSettings`` mirrors the sections of pacemaker's own ``input.yaml`` (``potential``, ``fit``,
``backend``, ``data``, ``seed``) with the same key names. Every model forbids unknown keys, so a typo such as
``kapa`` or ``maxiterr`` is an error here instead of being silently ignored by pacemaker.

Two plugin-level keys exist on top of pacemaker's:

* ``loss_weights`` (:class:`LossWeights`): energy/force weights, mapped onto pacemaker's single ``kappa``
  (see :meth:`LossWeights.to_kappa`). Giving it together with an explicit ``fit.loss.kappa`` is an error.
* ``cutoff``: a shortcut that sets ``rcut`` of every ``potential.bonds`` block (pacemaker's own top-level
  ``cutoff`` is deprecated and ignored, so it is never written).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from ase.data import chemical_symbols
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

__all__ = (
    'PLUGIN_OWNED_KEYS',
    'BackendSettings',
    'BondSpec',
    'DataSettings',
    'EmbeddingSpec',
    'FitSettings',
    'FunctionSpec',
    'FunctionsSettings',
    'LossSpec',
    'LossWeights',
    'PacemakerSettings',
    'PotentialSettings',
    'TrainingConfig',
    'WeightingSpec',
)

VALID_ELEMENTS = frozenset(chemical_symbols[1:])
BLOCK_KEYWORDS = ('ALL', 'UNARY', 'BINARY', 'TERNARY', 'QUATERNARY', 'QUINARY')

#: Keys of ``input.yaml`` that the plugin writes itself, and the input to use instead.
PLUGIN_OWNED_KEYS: dict[tuple[str, str], str] = {
    ('data', 'filename'): 'the `training_set` input (a TrainingSetData node)',
    ('data', 'test_filename'): 'the `test_set` input (a TrainingSetData node)',
    ('data', 'datapath'): 'the `training_set` / `test_set` inputs (the plugin writes the files itself)',
    ('fit', 'callbacks'): 'nothing: callbacks run arbitrary code and are not supported',
    ('potential', 'initial_potential'): 'the `initial_potential` input (a B-basis YAML SinglefileData)',
    ('potential', 'filename'): 'the `initial_potential` input (a B-basis YAML SinglefileData)',
}


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def validate_element(symbol: str) -> str:
    """Return ``symbol`` if it is a chemical element symbol, else raise ``ValueError``."""
    if symbol not in VALID_ELEMENTS:
        raise ValueError(f'{symbol!r} is not a chemical element symbol')
    return symbol


def validate_block_key(key: str) -> str:
    """Return ``key`` if it names a basis block: ALL/UNARY/BINARY/... or one element."""
    if key in BLOCK_KEYWORDS or key in VALID_ELEMENTS:
        return key
    raise ValueError(f'block key {key!r} must be one of {", ".join(BLOCK_KEYWORDS)} or an element symbol')


class _Strict(BaseModel):
    """Base: unknown keys are errors, assignments are validated, NaN/inf refused."""

    model_config = ConfigDict(extra='forbid', validate_assignment=True, populate_by_name=True, allow_inf_nan=False)

    def to_input(self) -> dict[str, Any]:
        """Return the plain dictionary as pacemaker reads it (aliases, no ``None`` values)."""
        return self.model_dump(mode='json', by_alias=True, exclude_none=True)


class LossWeights(_Strict):
    """The seed's loss weights, mapped honestly onto pacemaker's loss.

    Pacemaker minimises ``(1 - kappa) * sum_s w_e (dE_s / N_s)^2 + kappa * sum_i w_f |dF_i|^2 + L1 + L2``: one
    ``kappa`` splits the weight between per-atom energies and forces. Weights ``(energy, forces)`` therefore map
    to ``kappa = forces / (energy + forces)``; only their ratio matters (the regularisation terms are unscaled).
    Pacemaker cannot fit stress (python-ace issue 90): ``stress`` is kept for a backend that can, its default
    ``None`` means "not fitted", and any positive stress weight is refused rather than silently dropped.
    """

    energy: NonNegativeFloat = 0.7
    forces: NonNegativeFloat = 0.3
    stress: NonNegativeFloat | None = None

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


class EmbeddingSpec(_Strict):
    """One ``potential.embeddings`` block."""

    npot: Literal['FinnisSinclair', 'FinnisSinclairShiftedScaled'] = 'FinnisSinclairShiftedScaled'
    fs_parameters: list[FiniteFloat] = Field(default_factory=lambda: [1.0, 1.0, 1.0, 0.5])
    ndensity: PositiveInt = 2
    rho_core_cut: PositiveFloat | None = None
    drho_core_cut: PositiveFloat | None = None

    @model_validator(mode='after')
    def _check(self) -> EmbeddingSpec:
        if len(self.fs_parameters) != 2 * self.ndensity:
            raise ValueError(
                f'fs_parameters has {len(self.fs_parameters)} values but ndensity={self.ndensity} needs '
                f'{2 * self.ndensity} (two per density)'
            )
        return self


class BondSpec(_Strict):
    """One ``potential.bonds`` block (radial basis and cutoffs, in Å)."""

    radbase: Literal['SBessel', 'ChebExpCos', 'ChebPow', 'ChebLinear'] = 'SBessel'
    radparameters: list[FiniteFloat] = Field(default_factory=lambda: [5.25])
    rcut: PositiveFloat = 5.0
    dcut: PositiveFloat = 0.01
    NameOfCutoffFunction: Annotated[str, Field(pattern=r'^[A-Za-z_][A-Za-z0-9_]*$')] = 'cos'
    r_in: PositiveFloat | None = None
    delta_in: PositiveFloat | None = None
    inner_cutoff_type: Literal['distance', 'zbl'] | None = None
    core_repulsion: tuple[FiniteFloat, FiniteFloat] | None = Field(default=None, alias='core-repulsion')

    @model_validator(mode='after')
    def _check(self) -> BondSpec:
        if self.r_in is not None and self.r_in >= self.rcut:
            raise ValueError(f'r_in={self.r_in} must be smaller than rcut={self.rcut}')
        return self


class FunctionSpec(_Strict):
    """One ``potential.functions`` block: radial and angular limits per body order."""

    nradmax_by_orders: list[PositiveInt]
    lmax_by_orders: list[NonNegativeInt]
    coefs_init: Literal['zero', 'random'] | None = None

    @model_validator(mode='after')
    def _check(self) -> FunctionSpec:
        if len(self.nradmax_by_orders) != len(self.lmax_by_orders):
            raise ValueError(
                f'nradmax_by_orders ({len(self.nradmax_by_orders)} orders) and lmax_by_orders '
                f'({len(self.lmax_by_orders)} orders) must have the same length'
            )
        return self


class FunctionsSettings(_Strict):
    """``potential.functions``: basis size and per-block limits."""

    number_of_functions_per_element: PositiveInt | None = 100
    UNARY: FunctionSpec | None = None
    BINARY: FunctionSpec | None = None
    TERNARY: FunctionSpec | None = None
    QUATERNARY: FunctionSpec | None = None
    QUINARY: FunctionSpec | None = None
    ALL: FunctionSpec | None = Field(
        default_factory=lambda: FunctionSpec(nradmax_by_orders=[15, 3, 2, 1], lmax_by_orders=[0, 2, 2, 1])
    )


BlockKey = Annotated[str, Field(min_length=1)]


def _check_blocks(blocks: dict[str, Any]) -> dict[str, Any]:
    for key in blocks:
        validate_block_key(key)
    if not blocks:
        raise ValueError('at least one block (e.g. ALL) is required')
    return blocks


class PotentialSettings(_Strict):
    """``potential``: the ACE basis."""

    deltaSplineBins: PositiveFloat = 0.001
    elements: list[str] | None = Field(default=None, description='default: the elements of the training data')
    embeddings: dict[BlockKey, EmbeddingSpec] = Field(default_factory=lambda: {'ALL': EmbeddingSpec()})
    bonds: dict[BlockKey, BondSpec] = Field(default_factory=lambda: {'ALL': BondSpec()})
    functions: FunctionsSettings = Field(default_factory=FunctionsSettings)

    _check_embeddings = field_validator('embeddings')(_check_blocks)
    _check_bonds = field_validator('bonds')(_check_blocks)

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

    @property
    def cutoff(self) -> float:
        """The neighbour cutoff pacemaker uses: the largest ``rcut`` over the bond blocks."""
        return max(bond.rcut for bond in self.bonds.values())


class LossSpec(_Strict):
    """``fit.loss``: force weight ``kappa`` (energy weight is ``1 - kappa``) and regularisation."""

    kappa: Annotated[float, Field(ge=0.0, le=1.0)] | Literal['auto'] = 0.3
    L1_coeffs: NonNegativeFloat = 1e-8
    L2_coeffs: NonNegativeFloat = 1e-8
    w0_rad: NonNegativeFloat | None = None
    w1_rad: NonNegativeFloat | None = None
    w2_rad: NonNegativeFloat | None = None
    w_orth: NonNegativeFloat | None = None


class WeightingSpec(_Strict):
    """``fit.weighting``: pacemaker's ``EnergyBasedWeightingPolicy`` (without it: uniform weights)."""

    type: Literal['EnergyBasedWeightingPolicy'] = 'EnergyBasedWeightingPolicy'
    nfit: PositiveInt | None = None
    cutoff: PositiveFloat | None = None
    DElow: PositiveFloat = 1.0
    DEup: PositiveFloat = 10.0
    DFup: PositiveFloat | None = 50.0
    DE: PositiveFloat = 1.0
    DF: PositiveFloat = 1.0
    wlow: Annotated[float, Field(gt=0.0, le=1.0)] = 0.75
    n_lower: PositiveInt | None = None
    n_upper: PositiveInt | None = None
    reftype: Literal['all', 'bulk', 'cluster'] = 'all'
    energy: Literal['convex_hull', 'cohesive'] = 'convex_hull'
    seed: int | None = None

    @model_validator(mode='after')
    def _check(self) -> WeightingSpec:
        if self.DElow >= self.DEup:
            raise ValueError(f'DElow={self.DElow} must be smaller than DEup={self.DEup}')
        return self


class FitSettings(_Strict):
    """``fit``: loss, weighting, optimiser and iteration control."""

    loss: LossSpec = Field(default_factory=LossSpec)
    weighting: WeightingSpec | None = None
    optimizer: Literal['BFGS', 'L-BFGS-B', 'CG', 'trf', 'dogbox', 'lm', 'dual_annealing', 'Adam', 'SGD'] = 'BFGS'
    options: dict[Annotated[str, Field(pattern=r'^[A-Za-z_][A-Za-z0-9_]*$')], FiniteFloat | int | bool] | None = None
    maxiter: PositiveInt = 100
    repulsion: Literal['auto'] | None = 'auto'
    ladder_step: (
        PositiveInt
        | Annotated[float, Field(gt=0.0, lt=1.0)]
        | tuple[PositiveInt, Annotated[float, Field(gt=0.0, lt=1.0)]]
        | None
    ) = None
    ladder_type: Literal['body_order', 'power_order'] | None = None
    fit_cycles: PositiveInt | None = None
    noise_relative_sigma: NonNegativeFloat | None = None
    noise_absolute_sigma: NonNegativeFloat | None = None
    min_relative_train_loss_per_iter: NonNegativeFloat | None = None
    min_relative_test_loss_per_iter: NonNegativeFloat | None = None
    early_stopping_patience: PositiveInt | None = None


class GpuConfig(_Strict):
    """``backend.gpu_config``."""

    gpu_ind: int = -1
    mem_limit: NonNegativeInt | None = None


class BackendSettings(_Strict):
    """``backend``: always written (without it pacemaker fails or falls back to the slow pyace evaluator)."""

    evaluator: Literal['tensorpot', 'pyace'] = 'tensorpot'
    batch_size: PositiveInt = 100
    batch_size_reduction: bool | None = None
    batch_size_reduction_factor: Annotated[float, Field(gt=1.0)] | None = None
    display_step: PositiveInt = 20
    gpu_config: GpuConfig | None = None
    parallel_mode: Literal['serial', 'process'] | None = None
    n_workers: PositiveInt | None = None


ReferenceEnergy = Literal['auto'] | FiniteFloat | dict[str, FiniteFloat]


class DataSettings(_Strict):
    """``data``: what pacemaker does with the dataset the plugin writes (file names are the plugin's)."""

    test_size: Annotated[float, Field(gt=0.0, lt=1.0)] | PositiveInt | None = None
    reference_energy: ReferenceEnergy | None = None
    ignore_weights: bool | None = None
    aug_factor: NonNegativeFloat | None = None
    seed: int | None = None

    @field_validator('reference_energy')
    @classmethod
    def _check_reference(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key in value:
                if key != 'shift':
                    validate_element(key)
        return value


def _refuse_owned_keys(data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    for (section, key), instead in PLUGIN_OWNED_KEYS.items():
        if isinstance(data.get(section), dict) and key in data[section]:
            raise ValueError(f'{section}.{key} is set by the plugin; use {instead}')
    if 'cutoff' in data and isinstance(data.get('potential'), dict):
        bonds = data['potential'].get('bonds') or {}
        for name, bond in bonds.items():
            if isinstance(bond, dict) and 'rcut' in bond and bond['rcut'] != data['cutoff']:
                raise ValueError(
                    f'cutoff={data["cutoff"]} conflicts with potential.bonds.{name}.rcut={bond["rcut"]}: give one'
                )
    return data


class PacemakerSettings(_Strict):
    """Everything pacemaker's ``input.yaml`` says, validated. Every key is optional."""

    seed: int = 42
    cutoff: PositiveFloat | None = Field(default=None, description='shortcut: rcut of every bond block')
    loss_weights: LossWeights | None = None
    metadata: dict[Annotated[str, Field(pattern=r'^[A-Za-z_][A-Za-z0-9_]*$')], str] | None = None
    potential: PotentialSettings = Field(default_factory=PotentialSettings)
    fit: FitSettings = Field(default_factory=FitSettings)
    backend: BackendSettings = Field(default_factory=BackendSettings)
    data: DataSettings = Field(default_factory=DataSettings)

    @model_validator(mode='before')
    @classmethod
    def _before(cls, data: Any) -> Any:
        return _refuse_owned_keys(data)

    @model_validator(mode='after')
    def _after(self) -> PacemakerSettings:
        if self.loss_weights is not None:
            if 'kappa' in self.fit.loss.model_fields_set:
                raise ValueError(
                    'give either loss_weights or fit.loss.kappa, not both (loss_weights maps onto kappa = '
                    'forces / (energy + forces))'
                )
        if self.cutoff is not None:
            for bond in self.potential.bonds.values():
                bond.rcut = self.cutoff
        return self

    @property
    def kappa(self) -> float | str:
        """The ``kappa`` pacemaker will use."""
        if self.loss_weights is not None:
            return self.loss_weights.to_kappa()
        return self.fit.loss.kappa

    def with_elements(self, elements: list[str]) -> PacemakerSettings:
        """Return a copy whose ``potential.elements`` is ``elements`` where it was omitted."""
        if self.potential.elements is not None:
            return self
        copy = self.model_copy(deep=True)
        copy.potential.elements = sorted(elements)
        return copy

    def to_pacemaker_input(self, filename: str, test_filename: str | None = None) -> dict[str, Any]:
        """Return the ``input.yaml`` content as a dictionary, with the plugin's dataset file names.

        ``loss_weights`` and ``cutoff`` are resolved (into ``fit.loss.kappa`` and ``bonds.*.rcut``), not written.
        """
        document = self.to_input()
        document.pop('loss_weights', None)
        document.pop('cutoff', None)
        document['fit']['loss']['kappa'] = self.kappa
        document['data']['filename'] = filename
        if test_filename is not None:
            document['data']['test_filename'] = test_filename
        return document

    @classmethod
    def from_pacemaker_input(cls, document: dict[str, Any]) -> PacemakerSettings:
        """Validate a parsed ``input.yaml`` (e.g. rendered from a user's template) against these models."""
        document = {key: (dict(value) if isinstance(value, dict) else value) for key, value in document.items()}
        data = document.get('data')
        if isinstance(data, dict):
            data.pop('filename', None)
            data.pop('test_filename', None)
        return cls.model_validate(_absent_as_none(cls, document))


def _absent_as_none(model: type[BaseModel], data: Any) -> Any:
    """In a complete ``input.yaml``, an absent optional key means "off" (``None``), not the plugin's default."""
    if not isinstance(data, dict):
        return data
    result = dict(data)
    for name, field in model.model_fields.items():
        key = field.alias or name
        annotation = field.annotation
        submodel = next((arg for arg in getattr(annotation, '__args__', (annotation,)) if _is_model(arg)), None)
        if key in result:
            if submodel is not None:
                result[key] = _absent_as_none(submodel, result[key])
        elif field.default is not None and _allows_none(annotation) and name not in ('loss_weights', 'cutoff'):
            result[key] = None
    return result


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _allows_none(annotation: Any) -> bool:
    return type(None) in getattr(annotation, '__args__', ())


def first_error_location(error: Exception) -> str:
    """Return a compact ``loc: message`` summary of a pydantic ``ValidationError`` (or ``str(error)``)."""
    errors = getattr(error, 'errors', None)
    if not callable(errors):
        return str(error)
    lines = []
    for item in errors():
        location = '.'.join(str(part) for part in item['loc'] if not re.fullmatch(r'function-after\[.*\]', str(part)))
        lines.append(f'{location}: {item["msg"]}' if location else item['msg'])
    return '; '.join(lines)


class TrainingConfig(_Strict):
    """The seed's configuration of one training, for :class:`~aiida_mlip_autopipe.trainer.PacemakerTrainer`.

    ``settings`` has the nesting of :class:`PacemakerSettings`; ``loss_weights`` is mapped onto its
    ``fit.loss.kappa`` (giving ``kappa`` in ``settings`` too is an error).
    """

    pacemaker_executable: FilePath
    data_source_db: Path
    template_file: FilePath | None = None
    delta_learning: bool = True
    zbl_inner: PositiveFloat = Field(default=1.0, description='ZBL baseline: LAMMPS pair_style zbl inner cutoff (Å)')
    zbl_outer: PositiveFloat = Field(default=2.0, description='ZBL baseline: LAMMPS pair_style zbl outer cutoff (Å)')
    loss_weights: LossWeights = Field(default_factory=LossWeights)
    settings: dict[str, Any] = Field(default_factory=dict)
    selection: str | None = Field(default=None, description="ASE db query string, e.g. 'config_type=bulk'")
    on_missing_forces: Literal['refuse', 'skip'] = 'refuse'
    on_invalid: Literal['refuse', 'skip'] = 'refuse'
    min_structures: PositiveInt = 50
    test_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    split_seed: int = 42
    output_dir: Path = Path('.')
    potential_filename: Annotated[str, Field(pattern=r'^[A-Za-z0-9_.\-]+\.yace$')] | None = None
    computer: str = 'localhost'
    num_threads: PositiveInt | None = Field(default=None, description='default: all cores of this machine')
    max_wallclock_seconds: PositiveInt | None = None
    profile: str | None = Field(default=None, description='AiiDA profile to load when none is loaded')

    @model_validator(mode='after')
    def _check(self) -> TrainingConfig:
        if not os.access(self.pacemaker_executable, os.X_OK):
            raise ValueError(f'pacemaker_executable {self.pacemaker_executable} is not executable (chmod +x?)')
        if 'loss_weights' in self.settings:
            raise ValueError('give loss_weights as the TrainingConfig field, not inside settings')
        if self.zbl_inner >= self.zbl_outer:
            raise ValueError(f'zbl_inner={self.zbl_inner} must be smaller than zbl_outer={self.zbl_outer}')
        if self.delta_learning and (self.settings.get('fit') or {}).get('repulsion') == 'auto':
            raise ValueError('delta_learning: fit.repulsion="auto" would add a second ZBL core; omit it')
        self.pacemaker_settings()
        return self

    def pacemaker_settings(self) -> PacemakerSettings:
        """Return the validated pacemaker settings with the loss weights applied."""
        return PacemakerSettings.model_validate({**self.settings, 'loss_weights': self.loss_weights.model_dump()})
