"""Plots are made on their own Agg canvas: the process-wide matplotlib backend and pyplot's registry are untouched."""

import subprocess
import sys

PROBE = """
import matplotlib
matplotlib.use('svg')
import numpy as np
from aiida_mlip_autopipe.active_learning.calibration import calibration_figure
from aiida_mlip_autopipe.potentials.plots import loop_figure, png
rows = [{'iteration': 0, 'rmse_forces_test': 40.0, 'labelled': 3, 'max_gamma': 5.0, 'fraction_above_gamma_lo': 0.2,
         'error_vs_gamma': [{'gamma': 2.0, 'force_rmse': 0.1}, {'gamma': 9.0, 'force_rmse': 0.5, 'refused': True}]},
        {'iteration': 1, 'rmse_forces_test': 20.0, 'labelled': 1, 'max_gamma': 2.0, 'fraction_above_gamma_lo': 0.0}]
content = png(loop_figure(rows)) + png(calibration_figure(rows, 3.0, 0.2))
import sys
print(matplotlib.get_backend(), content[:8] == b'\\x89PNG\\r\\n\\x1a\\n', 'matplotlib.pyplot' in sys.modules)
"""


def test_plots_leave_the_matplotlib_backend_unchanged():
    """A user's backend ('svg' here) is still the backend after the plugin made PNGs, and pyplot was never imported."""
    result = subprocess.run([sys.executable, '-c', PROBE], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ['svg', 'True', 'False']
