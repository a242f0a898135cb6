"""Codes the plugin registers itself: pacemaker for the façade, and the tools beside a pacemaker code."""

from __future__ import annotations

from pathlib import PurePosixPath

from aiida import orm

__all__ = ('installed_code', 'sibling_code')


def installed_code(
    computer: orm.Computer, executable: str, label: str, description: str, default_calc_job_plugin: str | None = None
) -> orm.InstalledCode:
    """Return the ``InstalledCode`` of ``executable`` on ``computer``, creating it (with ``label``) only once."""
    query = orm.QueryBuilder().append(orm.Computer, filters={'id': computer.pk}, tag='computer')
    query.append(orm.InstalledCode, with_computer='computer', filters={'attributes.filepath_executable': executable})
    existing = query.first(flat=True)
    if existing is not None:
        return existing
    return orm.InstalledCode(
        label=label,
        computer=computer,
        filepath_executable=executable,
        default_calc_job_plugin=default_calc_job_plugin,
        description=description,
    ).store()


def sibling_code(code: orm.AbstractCode, name: str) -> orm.InstalledCode:
    """Return the ``InstalledCode`` of tool ``name`` in the directory of ``code``'s executable."""
    executable = str(PurePosixPath(str(code.get_executable())).parent / name)
    if code.computer is None:
        raise ValueError(f'{code.full_label} has no computer: no tool {name!r} beside it')
    return installed_code(code.computer, executable, f'{name}-{code.label}', f'{name} beside {code.full_label}')
