"""Plots from a fit's stored outputs: the learning curve and parity plots (predicted vs reference), as PNG.

One call: ``make_plots(node, directory)`` with a potential, a ``PacemakerCalculation`` or a training workflow node.
Inside the training workflow, :func:`render_plots` (a calcfunction) stores the same PNGs as nodes.
"""

from __future__ import annotations

import io
import pathlib

from aiida import orm
from aiida.engine import calcfunction

from aiida_mlip_autopipe.potentials.accuracy import prediction_errors

__all__ = ('loop_figure', 'make_plots', 'plot_learning_curve', 'plot_parity', 'png', 'render_plots')


def _figure(width: float, height: float):
    """A figure on its own Agg canvas: no pyplot, so the process-wide backend and figure registry stay untouched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), constrained_layout=True)
    FigureCanvasAgg(figure)
    return figure


def plot_learning_curve(learning_curve: orm.ArrayData, title: str = 'Learning curve'):
    """Return a figure: loss (log scale), energy RMSE (meV/atom) and force RMSE (meV/Å) per iteration."""
    from matplotlib.ticker import MaxNLocator

    figure = _figure(14, 4.2)
    axes = figure.subplots(1, 3)
    names = learning_curve.get_arraynames()
    panels = (
        ('loss', 'Loss', True),
        ('rmse_energy', 'Energy RMSE (meV/atom)', False),
        ('rmse_forces', 'Force RMSE (meV/Å)', False),
    )
    for axis, (name, label, log) in zip(axes, panels, strict=True):
        axis.plot(learning_curve.get_array('iteration'), learning_curve.get_array(name), label='train', color='C0')
        if f'test_{name}' in names:
            axis.plot(
                learning_curve.get_array('test_iteration'),
                learning_curve.get_array(f'test_{name}'),
                'o-',
                label='test',
                color='C1',
                markersize=4,
            )
        axis.set_xlabel('Iteration')
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(label)
        if log:
            axis.set_yscale('log')
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    return figure


def plot_parity(predictions: dict[str, orm.ArrayData], title: str = 'Parity', reference_label: str = 'DFT'):
    """Return a figure: predicted vs reference energy per atom (eV/atom) and force components (eV/Å)."""
    figure = _figure(11, 5)
    axes = figure.subplots(1, 2)
    for color, (split, node) in zip(('C0', 'C1'), predictions.items(), strict=False):
        natoms = node.get_array('natoms')
        energy = node.get_array('energy') / natoms
        energy_pred = node.get_array('energy_pred') / natoms
        forces, forces_pred = node.get_array('forces').ravel(), node.get_array('forces_pred').ravel()
        errors = prediction_errors(node)
        rmse_e, rmse_f = errors['rmse_energy'], errors.get('rmse_forces', float('nan'))
        axes[0].scatter(
            energy,
            energy_pred,
            s=12,
            color=color,
            alpha=0.7,
            label=f'{split} ({len(natoms)}): RMSE {rmse_e:.2f} meV/atom',
        )
        axes[1].scatter(forces, forces_pred, s=4, color=color, alpha=0.4, label=f'{split}: RMSE {rmse_f:.1f} meV/Å')
    for axis, unit, quantity in ((axes[0], 'eV/atom', 'Energy per atom'), (axes[1], 'eV/Å', 'Force component')):
        low, high = axis.get_xlim()
        low, high = min(low, axis.get_ylim()[0]), max(high, axis.get_ylim()[1])
        axis.plot([low, high], [low, high], color='grey', linewidth=1)
        axis.set_xlim(low, high)
        axis.set_ylim(low, high)
        axis.set_xlabel(f'{quantity}, {reference_label} ({unit})')
        axis.set_ylabel(f'{quantity}, ACE ({unit})')
        axis.grid(alpha=0.3)
        axis.legend(loc='upper left')
    figure.suptitle(title)
    return figure


def loop_figure(rows: list[dict], title: str = 'Active learning'):
    """Return a figure of an active-learning loop: RMSEs of each fit and labelled structures per iteration;
    max extrapolation grade and the fraction of explored steps above gamma_lo per iteration."""
    from matplotlib.ticker import MaxNLocator

    figure = _figure(12, 4.2)
    errors, grades = figure.subplots(1, 2)

    def series(key):
        points = [(row['iteration'], row[key]) for row in rows if row.get(key) is not None]
        return [p[0] for p in points], [p[1] for p in points]

    for key, style in (
        ('rmse_forces_test', 'o-'),
        ('rmse_forces_train', 'o--'),
        ('rmse_energy_test', 's-'),
        ('rmse_energy_train', 's--'),
    ):
        x, y = series(key)
        if x:
            errors.plot(x, y, style, label=key.replace('rmse_', '').replace('_', ' '))
    errors.set_xlabel('Iteration')
    errors.set_ylabel('RMSE (meV/Å forces, meV/atom energy)')
    errors.legend(loc='upper right', fontsize='small')
    labelled = errors.twinx()
    x, y = series('labelled')
    labelled.bar(x, y, alpha=0.2, color='gray')
    labelled.set_ylabel('Structures labelled')
    x, y = series('max_gamma')
    grades.semilogy(x, y, 'o-', label='max gamma')
    grades.set_xlabel('Iteration')
    grades.set_ylabel('Max extrapolation grade')
    fraction = grades.twinx()
    x, y = series('fraction_above_gamma_lo')
    fraction.plot(x, [100 * value for value in y], 's--', color='tab:red')
    fraction.set_ylabel('Steps above gamma_lo (%)', color='tab:red')
    for axis in (errors, grades):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(title)
    return figure


def png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=120)
    return buffer.getvalue()


def _figures(learning_curve, predictions, metrics) -> dict[str, bytes]:
    delta = bool(metrics and metrics.get('delta_learning'))
    reference = 'DFT - ZBL' if delta else 'DFT'
    suffix = ' (delta-learned: targets are DFT - ZBL)' if delta else ''
    figures = {'learning_curve': png(plot_learning_curve(learning_curve, f'Learning curve{suffix}'))}
    if predictions:
        figures['parity'] = png(plot_parity(predictions, f'Parity{suffix}', reference))
    return figures


@calcfunction
def render_plots(learning_curve: orm.ArrayData, metrics: orm.Dict, **predictions: orm.ArrayData) -> dict:
    """Store the learning curve and parity plots of a fit as PNG ``SinglefileData`` nodes."""
    figures = _figures(
        learning_curve,
        {key.removesuffix('_predictions'): node for key, node in predictions.items()},
        metrics.get_dict(),
    )
    return {name: orm.SinglefileData(io.BytesIO(content), filename=f'{name}.png') for name, content in figures.items()}


def _calculation_outputs(node: orm.Node):
    """The outputs holding learning_curve/predictions for a potential, calculation or workflow node."""
    if isinstance(node, orm.SinglefileData):
        node = node.creator
    if not isinstance(node, orm.ProcessNode) or 'learning_curve' not in node.outputs:
        raise ValueError('give a potential, a PacemakerCalculation or a training workflow node with a learning curve')
    return node.outputs


def make_plots(node: orm.Node, directory: str | pathlib.Path = '.') -> list[pathlib.Path]:
    """Write ``learning_curve.png`` and ``parity.png`` of a fit to ``directory``; return their paths."""
    outputs = _calculation_outputs(node)
    predictions = {
        split: outputs[f'{split}_predictions'] for split in ('train', 'test') if f'{split}_predictions' in outputs
    }
    metrics = outputs['metrics'].get_dict() if 'metrics' in outputs else {}
    directory = pathlib.Path(directory).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in _figures(outputs['learning_curve'], predictions, metrics).items():
        path = directory / f'{name}.png'
        path.write_bytes(content)
        paths.append(path)
    return paths
