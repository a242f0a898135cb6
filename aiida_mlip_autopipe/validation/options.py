"""The options of each property (pydantic models whose messages name the field) and their check."""

from __future__ import annotations

from typing import Annotated, Literal

from ase.eos import eos_names
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aiida_mlip_autopipe.validation.common import PROPERTIES

__all__ = ('MAX_REPEAT', 'OPTIONS', 'parse_properties')

#: the most repetitions of a supercell per direction (50 x 50 x 50 would run for days)
MAX_REPEAT = 10

#: a supercell: 1 to :data:`MAX_REPEAT` repetitions along each cell vector
Repeat = tuple[
    Annotated[int, Field(ge=1, le=MAX_REPEAT)],
    Annotated[int, Field(ge=1, le=MAX_REPEAT)],
    Annotated[int, Field(ge=1, le=MAX_REPEAT)],
]


class _Options(BaseModel):
    # NaN and infinity are never an option (an infinite friction or min_distance ran and gave nonsense)
    model_config = ConfigDict(extra='forbid', allow_inf_nan=False)

    @field_validator('*', mode='before')
    @classmethod
    def _no_booleans(cls, value):
        """``steps: true`` is not 1 step: booleans are not numbers here."""
        if isinstance(value, bool):
            raise ValueError(f'{value} is a boolean, not a number')
        return value


class EOSOptions(_Options):
    points: int = Field(7, ge=5, le=101, description='Energy-volume points.')
    volume_range: float = Field(0.1, gt=0, lt=0.5, description='Volumes from (1 - range) V to (1 + range) V.')
    eos: Literal[tuple(eos_names)] = Field(  # type: ignore[valid-type]
        'birchmurnaghan', description="ASE's equation of state name."
    )


class ElasticOptions(_Options):
    strain: float = Field(0.01, gt=0, le=0.05, description='Largest strain per Voigt component.')
    points: int = Field(4, ge=2, le=20, multiple_of=2, description='Strains per component (even, no zero).')


class VacancyOptions(_Options):
    supercell: Repeat = Field((2, 2, 2), description='Repetitions of the structure.')
    index: int = Field(0, ge=0, description='The atom removed.')
    fmax: float = Field(0.01, gt=0, description='Relaxation force limit (eV/Å).')
    steps: int = Field(200, ge=0, description='Relaxation steps at most.')


class PhononOptions(_Options):
    supercell: Repeat = Field((2, 2, 2), description='Supercell of the displacements.')
    displacement: float = Field(0.01, gt=0, le=0.1, description='Displacement (Å).')
    npoints: int = Field(100, ge=10, le=2000, description='q-points along the path.')
    mesh: int = Field(12, ge=2, le=64, description='q-mesh of the density of states (per direction).')
    imaginary_tolerance: float = Field(0.1, ge=0, description='Frequencies below -this (THz) count as imaginary.')


class MDOptions(_Options):
    temperatures: list[Annotated[float, Field(gt=0)]] = Field(
        [300.0], min_length=1, description='Temperatures (K, above 0), one run each.'
    )
    steps: int = Field(200, ge=1, description='Steps per run.')
    timestep_fs: float = Field(2.0, gt=0, le=10, description='Time step (fs).')
    friction: float = Field(0.01, gt=0, description='Langevin friction (1/fs).')
    supercell: Repeat = Field((2, 2, 2), description='Repetitions of the structure.')
    min_distance: float | None = Field(None, gt=0, description='Closest allowed distance (Å); default half the start.')
    interval: int = Field(5, ge=1, description='Record every this many steps.')
    seed: int = Field(42, ge=0, le=2**32 - 1, description='Random seed of velocities and thermostat.')

    @field_validator('temperatures')
    @classmethod
    def _distinct(cls, temperatures: list[float]) -> list[float]:
        if len(set(temperatures)) != len(temperatures):
            raise ValueError(f'{temperatures} repeats a temperature (one run each): give each once')
        return temperatures


OPTIONS: dict[str, type[_Options]] = {
    'eos': EOSOptions,
    'elastic': ElasticOptions,
    'vacancy': VacancyOptions,
    'phonons': PhononOptions,
    'md': MDOptions,
}


def parse_properties(properties: dict) -> dict[str, dict]:
    """The requested properties with every option filled (in :data:`PROPERTIES` order); ``ValueError`` in one line
    naming the property and field. ``{'eos': {}}`` or ``{'eos': True}`` take the defaults."""
    if not properties:
        raise ValueError(f'properties: give at least one of {", ".join(PROPERTIES)}')
    unknown = sorted(set(properties) - set(PROPERTIES))
    if unknown:
        raise ValueError(f'properties: unknown {", ".join(map(repr, unknown))}; known are {", ".join(PROPERTIES)}')
    parsed = {}
    for name in PROPERTIES:
        if name not in properties or properties[name] is False or properties[name] is None:
            continue
        given = {} if properties[name] is True else properties[name]
        if not isinstance(given, dict):
            raise ValueError(f'properties.{name}: give a dict of options (or true), not {given!r}')
        try:
            parsed[name] = OPTIONS[name](**given).model_dump()
        except ValidationError as exception:
            error = exception.errors()[0]
            field = '.'.join(str(part) for part in error['loc'])
            raise ValueError(f'properties.{name}.{field}: {error["msg"]}') from None
    if not parsed:
        raise ValueError(f'properties: give at least one of {", ".join(PROPERTIES)}')
    return parsed
