"""A potential's errors on a predictions node (reference vs predicted energy and forces), as pacemaker reports them."""

from __future__ import annotations

import numpy as np
from aiida import orm

__all__ = ('prediction_errors',)


def prediction_errors(predictions: orm.ArrayData) -> dict[str, float]:
    """``rmse_energy`` (meV/atom), ``rmse_forces`` and ``mae_forces`` (meV/Å, per component) of a predictions node,
    defined as pacemaker's metrics tables define ``rmse_epa``, ``rmse_f_comp`` and ``mae_f_comp`` (unweighted)."""
    natoms = predictions.get_array('natoms')
    energy = (predictions.get_array('energy_pred') - predictions.get_array('energy')) / natoms
    forces = np.ravel(predictions.get_array('forces_pred') - predictions.get_array('forces'))
    errors = {'rmse_energy': float(1000 * np.sqrt(np.mean(np.square(energy))))}
    if forces.size:
        errors['rmse_forces'] = float(1000 * np.sqrt(np.mean(np.square(forces))))
        errors['mae_forces'] = float(1000 * np.mean(np.abs(forces)))
    return errors
