"""Plots of a validation (matplotlib's object API, no global backend): EOS overlay, phonon bands overlay, MD
traces. Each returns PNG bytes, or ``None`` when the arrays lack the property."""

from __future__ import annotations

import io

import numpy as np

__all__ = ('eos_plot', 'md_plot', 'phonon_plot')


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=110, bbox_inches='tight')
    return buffer.getvalue()


def _figure(columns: int = 1):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.0 * columns, 3.8))
    return figure, figure.subplots(1, columns, squeeze=False)[0]


def eos_plot(potential: dict, reference: dict, title: str = '') -> bytes | None:
    """Energy per atom against volume per atom of both sides (shifted to each side's minimum)."""
    if 'eos_volumes' not in potential:
        return None
    figure, (axis,) = _figure()
    for arrays, name, style in ((reference, 'reference', 'o-'), (potential, 'potential', 's--')):
        if 'eos_volumes' in arrays:
            energies = np.asarray(arrays['eos_energies'])
            axis.plot(arrays['eos_volumes'], (energies - energies.min()) * 1000, style, label=name)
    axis.set_xlabel('volume (Å$^3$/atom)')
    axis.set_ylabel('energy - minimum (meV/atom)')
    axis.set_title(f'{title} equation of state'.strip())
    axis.legend()
    return _png(figure)


def phonon_plot(potential: dict, reference: dict, path: str = '', title: str = '') -> bytes | None:
    """Phonon bands of both sides along the path, and the densities of states."""
    if 'phonon_frequencies' not in potential:
        return None
    figure, (bands, dos) = _figure(2)
    for arrays, name, style in ((reference, 'reference', '-'), (potential, 'potential', '--')):
        if 'phonon_frequencies' not in arrays:
            continue
        color = 'black' if name == 'reference' else 'tab:red'
        lines = bands.plot(arrays['phonon_distance'], arrays['phonon_frequencies'], style, color=color, lw=1)
        lines[0].set_label(name)
        dos.plot(arrays['phonon_dos'], arrays['phonon_dos_frequencies'], style, color=color, label=name)
    special = np.asarray(potential['phonon_special_distance'])
    for position in special:
        bands.axvline(position, color='grey', lw=0.5)
    labels = [r'$\Gamma$' if label == 'G' else label for label in path.replace(',', '') if label.isalpha()]
    if len(labels) == len(special):  # a break in the path (K,U): one tick 'K|U'
        ticks: list[float] = []
        names: list[str] = []
        for position, name in zip(special, labels, strict=True):
            if ticks and np.isclose(position, ticks[-1]):
                names[-1] = f'{names[-1]}|{name}'
            else:
                ticks.append(position)
                names.append(name)
        bands.set_xticks(ticks, names)
    bands.set_xlim(special[0], special[-1])
    bands.set_ylabel('frequency (THz)')
    bands.set_title(f'{title} phonons'.strip())
    bands.legend()
    dos.set_xlabel('DOS')
    dos.legend()
    return _png(figure)


def md_plot(potential: dict, reference: dict, temperatures: list[float] | None = None, title: str = '') -> bytes | None:
    """Temperature, smallest distance and (with an active set) the extrapolation grade along each MD run (potential
    solid, reference dashed)."""
    runs = sorted(key for key in potential if key.startswith('md_'))
    if not runs:
        return None
    traces = [np.asarray(arrays[key]) for arrays in (potential, reference) for key in runs if len(arrays.get(key, []))]
    with_gamma = any(np.isfinite(trace[:, 5]).any() for trace in traces)
    figure, axes = _figure(3 if with_gamma else 2)
    temperature, distance = axes[:2]
    for index, key in enumerate(runs):
        label = f'{temperatures[index]:g} K' if temperatures and index < len(temperatures) else key
        for arrays, style, suffix in ((potential, '-', ''), (reference, '--', ' (reference)')):
            if key not in arrays or not len(arrays[key]):
                continue
            trace = np.asarray(arrays[key])
            temperature.plot(trace[:, 0], trace[:, 1], style, label=label + suffix)
            distance.plot(trace[:, 0], trace[:, 4], style, label=label + suffix)
            if with_gamma and np.isfinite(trace[:, 5]).any():
                axes[2].plot(trace[:, 0], trace[:, 5], style, label=label + suffix)
    names = ('temperature (K)', 'smallest distance (Å)', 'max extrapolation grade')
    for axis, name in zip(axes, names, strict=False):
        axis.set_xlabel('time (ps)')
        axis.set_ylabel(name)
    temperature.legend(fontsize='small')
    temperature.set_title(f'{title} MD'.strip())
    return _png(figure)
