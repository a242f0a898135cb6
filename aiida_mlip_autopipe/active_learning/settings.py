"""Validated settings of the active-learning loop: exploration (MD), selection (extrapolation grade, D-optimality)
and convergence. Unlike pacemaker's settings these are the plugin's own, so they carry defaults (documented here
and in the settings reference)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from aiida_mlip_autopipe.validation.targets import check_targets

__all__ = ('ConvergenceSettings', 'ExplorationSettings', 'RefitSettings', 'SelectionSettings', 'functions_for')


class _Settings(BaseModel):
    model_config = ConfigDict(extra='forbid', allow_inf_nan=False, use_attribute_docstrings=True)


class ExplorationSettings(_Settings):
    """Molecular dynamics with the current potential (pyace's calculator with the active set), from every starting
    structure at every temperature; a trajectory stops where the extrapolation grade reaches ``gamma_hi``."""

    temperatures_K: list[PositiveFloat] = Field(default=[300.0, 800.0], min_length=1)
    """Temperatures (K): one trajectory per starting structure, temperature and repeat."""
    steps: PositiveInt = 200
    """MD steps per trajectory (fewer where gamma_hi stops it)."""
    timestep_fs: PositiveFloat = 2.0
    """The MD time step (fs)."""
    ensemble: Literal['nvt', 'nve'] = 'nvt'
    """``nvt``: Langevin thermostat; ``nve``: velocity Verlet (velocities drawn at the temperature)."""
    friction_per_fs: PositiveFloat = 0.02
    """Langevin friction (1/fs), ``nvt`` only."""
    strain: NonNegativeFloat = Field(default=0.0, le=0.5)
    """Random symmetric strain of each starting cell, up to this fraction (0: none)."""
    rattle: NonNegativeFloat = Field(default=0.1, le=1.0)
    """Gaussian rattle (standard deviation, Å) of the starting positions, fresh for every trajectory and restart (0:
    none). The default, about the thermal displacement of a metal at the exploration's temperatures, makes the first
    frames hot-like: an early potential's trajectories stop within a few steps, and their frames are what the loop
    labels. Against 0.03 Å on the benchmark (docs/active_learning_benchmark.md) it took the first iteration's force
    error on the hot-MD test from 90 +- 39 to 18 +- 1 meV/Å (cu64, 3 seeds), and lowered it on the binary and the
    ternary. Without any rattle a start on which the potential already reaches gamma_hi gives the same frame at every
    restart and, while a refit is not taken, in every iteration."""
    repeats: PositiveInt = 1
    """Trajectories per starting structure and temperature (differently strained / rattled / thermalised)."""
    sample_interval: PositiveInt = 5
    """Every n-th step with gamma in [gamma_lo, gamma_hi) is a candidate for selection (besides the edge frames)."""
    edge_frames: bool = True
    """Also take, whatever the interval, the frame where a trajectory first reaches gamma_lo, the last frame before it
    stops at gamma_hi and the stopping frame itself: when an early potential extrapolates wildly (gamma_hi within a
    step or two), those are the only frames it offers; the physical guards judge them like any other."""
    restarts: NonNegativeInt = 9
    """A trajectory that stops at gamma_hi is restarted from its start (fresh deformation, rattle and velocities) up
    to this many times, while MD steps of its budget (``steps``) remain: the potential is probed around the start
    from several directions instead of once."""
    heating_fraction: float = Field(default=0.3, ge=0.0, lt=1.0)
    """Velocities start at 10 % of the target temperature and the thermostat's temperature rises linearly to the
    target over this fraction of the steps (``nvt`` only; 0: at the target from the first step), so that an early
    potential is explored near its data before it is driven hot."""
    seed: int = Field(default=0, ge=0, lt=2**32)
    """Random seed of strain, rattle, velocities and thermostat (the loop adds the iteration)."""


class SelectionSettings(_Settings):
    """Which explored configurations are labelled: those the potential extrapolates to, chosen D-optimally."""

    gamma_lo: PositiveFloat = 1.5
    """Below it the potential is trusted: frames with a lower max gamma are not candidates."""
    gamma_hi: PositiveFloat = 10.0
    """A trajectory stops where the max gamma reaches it; such configurations are taken as unphysical."""
    max_per_iteration: PositiveInt = 10
    """At most this many structures are labelled per iteration (at least 1: a loop that may select nothing cannot
    learn)."""
    method: Literal['d_optimal', 'max_gamma', 'random'] = 'd_optimal'
    """``d_optimal``: pacemaker's ``pace_select`` MaxVol against the active set (the candidates that extend it
    most); ``max_gamma``: simply the highest grades; ``random``: a random draw among the candidates (as DP-GEN
    picks within its trust window)."""
    stopping_frames: bool = True
    """The frames where trajectories stopped at gamma_hi (``exploration.edge_frames``) are candidates like the others;
    off: only when fewer than ``max_per_iteration`` candidates lie below gamma_hi."""
    spread_trajectories: bool = False
    """Take one candidate per starting structure, then one per trajectory (each in the method's order), before a
    second from any: labels from several starts and trajectories rather than neighbouring frames of one."""
    gamma_tolerance: float = Field(default=1.01, ge=1.0)
    """MaxVol's tolerance (``pace_select -g``)."""
    fill_up: bool = True
    """``d_optimal``: fill the selection up to ``max_per_iteration`` with the other candidates of the highest grade, one
    per trajectory first (MaxVol against a small basis picks few structures: its active set holds one environment
    per function and element)."""
    fill_order: Literal['highest_gamma', 'first_crossing'] = 'highest_gamma'
    """Which candidates fill the selection up: ``highest_gamma`` the highest grades first; ``first_crossing`` each
    trajectory's earliest frame in the window first (where it first reaches gamma_lo, before the potential's own MD
    has drifted into what it extrapolates wildly), then the lowest grades."""

    min_distance_ratio: float = Field(default=0.75, ge=0.0, le=1.0)
    """Physical guard: a candidate with two atoms closer than this fraction of the shortest distance of that element
    pair in the first fit's data (of any pair, for a pair the data lacks) is refused before selection (0: off)."""
    max_energy_above_data: PositiveFloat | None = 1.0
    """Physical guard on the labels (eV/atom): a labelled structure whose energy per atom lies more than this above the
    highest of the first fit's data is not trained on (counted as ``refused``; None: off)."""
    max_force_ratio: PositiveFloat | None = 10.0
    """Physical guard on the labels: a labelled structure with a force component larger than this multiple of the
    largest of the first fit's data is not trained on (counted as ``refused``; None: off)."""
    calibration_samples: NonNegativeInt = 2
    """Explored frames *below* gamma_lo labelled per iteration as well (drawn at random from every
    ``sample_interval``-th step): the potential's error there gives ``miss_rate``; they are trained on too."""
    miss_force_threshold: PositiveFloat = 0.3
    """A frame is a miss when its force RMSE (eV/Å, the current potential against the label) exceeds this although
    its gamma is below gamma_lo."""

    @model_validator(mode='after')
    def _order(self) -> SelectionSettings:
        if self.gamma_hi <= self.gamma_lo:
            raise ValueError(f'gamma_hi={self.gamma_hi} must be greater than gamma_lo={self.gamma_lo}')
        return self


class ConvergenceSettings(_Settings):
    """When the loop stops before ``max_iterations``."""

    fraction_above_gamma_lo: float = Field(default=0.01, ge=0.0, le=1.0)
    """Converged when fewer than this fraction of the explored steps reach gamma_lo (nothing selected while more
    steps reach it is not convergence: the loop stops with ``stop_reason`` ``nothing_selected_while_extrapolating``)."""
    max_failed_fraction: float = Field(default=0.5, ge=0.0, le=1.0)
    """The loop fails when more than this fraction of an iteration's labelling calculations fail."""
    property_targets: dict[str, dict[str, float]] | None = None
    """Stop when the validated physics is right: targets on the ``validation`` table of each iteration's potential,
    e.g. ``{'phonon_rmse': {'max': 0.2}, 'B0': {'max_relative_error': 0.05}, 'lost_atoms': {'max': 0}}`` (kinds:
    ``max``, ``min`` on the potential's value, ``max_abs_error``, ``max_relative_error``); needs the ``validation``
    inputs. Met by every validated structure: the loop stops with ``stop_reason`` ``property_targets``."""

    @field_validator('property_targets')
    @classmethod
    def _known_targets(cls, value: dict | None) -> dict | None:
        if value is not None:
            check_targets({}, value)  # ValueError naming the target that is not understood
        return value


class RefitSettings(_Settings):
    """How each refit is made and when it may replace the previous potential."""

    functions_schedule: list[tuple[NonNegativeInt, PositiveInt]] = Field(
        default=[(0, 16), (30, 32), (100, 64)], min_length=1
    )
    """Functions per element by training-set size: ``[[structures, functions], ...]``; a fit on at least
    ``structures`` training structures gets at most that many functions, never more than the settings'
    ``number_of_functions_per_element`` (the target; without one, the schedule alone decides) and never fewer than
    the previous fit (the basis only grows, by pacemaker's ladder extension of the previous potential).
    ``[[0, N]]`` with a large N: the target throughout."""
    max_test_error_ratio: PositiveFloat | None = 1.5
    """A refit replaces the previous potential only if its force and energy RMSE on the fixed test set stay below
    this multiple of the previous potential's (None: always); a refused refit is recorded (``accepted`` false) and
    the next iteration explores with the previous potential again, its labels kept. Not applied when the previous
    potential extrapolated on every frame it explored (``fraction_above_gamma_lo`` 1): its score on the first data's
    test set says nothing about where the loop works, and keeping it would explore the same way again."""
    energy_tolerance: NonNegativeFloat = 5.0
    """meV/atom: a refit's test energy RMSE counts as worse only if it also exceeds the previous one by more than
    this. The fixed test set is small (the first fit's split) and its errors scatter: without a floor, 0.41 → 0.62
    meV/atom refused a refit whose test force error fell sevenfold, and the loop kept its first potential."""
    forces_tolerance: NonNegativeFloat = 50.0
    """meV/Å: the same floor for the test force RMSE."""

    @model_validator(mode='after')
    def _schedule(self) -> RefitSettings:
        sizes = [size for size, _ in self.functions_schedule]
        if sizes != sorted(set(sizes)):
            raise ValueError(f'functions_schedule={self.functions_schedule}: give increasing training-set sizes')
        if sizes[0] != 0:
            raise ValueError(
                f'functions_schedule={self.functions_schedule}: the first entry must start at 0 structures'
            )
        return self


def functions_for(schedule: list, structures: int, target: int | None, previous: int | None = None) -> int | None:
    """Functions per element of a fit on ``structures`` training structures: the schedule's entry, capped by the
    ``target`` (the settings' number; ``None``: uncapped) and never below ``previous``."""
    scheduled = [functions for size, functions in schedule if structures >= size][-1]
    if target is not None:
        scheduled = min(scheduled, target)
    if previous is not None:
        scheduled = max(scheduled, previous)
    return scheduled
