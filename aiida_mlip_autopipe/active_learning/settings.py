"""Validated settings of the active-learning loop: exploration (MD), selection (extrapolation grade, D-optimality)
and convergence. Unlike pacemaker's settings these are the plugin's own, so they carry defaults (documented here
and in the settings reference)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

__all__ = ('ConvergenceSettings', 'ExplorationSettings', 'SelectionSettings')


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
    rattle: NonNegativeFloat = Field(default=0.0, le=1.0)
    """Gaussian rattle (standard deviation, Å) of the starting positions (0: none)."""
    repeats: PositiveInt = 1
    """Trajectories per starting structure and temperature (differently strained / rattled / thermalised)."""
    sample_interval: PositiveInt = 5
    """Every n-th step with gamma in [gamma_lo, gamma_hi) is a candidate for selection."""
    seed: int = Field(default=0, ge=0, lt=2**32)
    """Random seed of strain, rattle, velocities and thermostat (the loop adds the iteration)."""


class SelectionSettings(_Settings):
    """Which explored configurations are labelled: those the potential extrapolates to, chosen D-optimally."""

    gamma_lo: PositiveFloat = 1.5
    """Below it the potential is trusted: frames with a lower max gamma are not candidates."""
    gamma_hi: PositiveFloat = 10.0
    """A trajectory stops where the max gamma reaches it; such configurations are taken as unphysical."""
    max_per_iteration: int = Field(default=10, ge=0)
    """At most this many structures are labelled per iteration."""
    method: Literal['d_optimal', 'max_gamma'] = 'd_optimal'
    """``d_optimal``: pacemaker's ``pace_select`` MaxVol against the active set (the candidates that extend it
    most); ``max_gamma``: simply the highest grades."""
    gamma_tolerance: float = Field(default=1.01, ge=1.0)
    """MaxVol's tolerance (``pace_select -g``)."""

    @model_validator(mode='after')
    def _order(self) -> SelectionSettings:
        if self.gamma_hi <= self.gamma_lo:
            raise ValueError(f'gamma_hi={self.gamma_hi} must be greater than gamma_lo={self.gamma_lo}')
        return self


class ConvergenceSettings(_Settings):
    """When the loop stops before ``max_iterations``."""

    fraction_above_gamma_lo: float = Field(default=0.01, ge=0.0, le=1.0)
    """Converged when fewer than this fraction of the explored steps reach gamma_lo (or nothing is selected)."""
    max_failed_fraction: float = Field(default=0.5, ge=0.0, le=1.0)
    """The loop fails when more than this fraction of an iteration's labelling calculations fail."""
