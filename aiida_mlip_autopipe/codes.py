"""Codes the plugin registers itself: pacemaker for the façade, and the tools beside a pacemaker code."""

from __future__ import annotations

from pathlib import PurePosixPath

from aiida import orm

__all__ = ('existing_code', 'installed_code', 'sibling_code')


def existing_code(computer: orm.Computer, executable: str) -> orm.InstalledCode | None:
    """The ``InstalledCode`` of ``executable`` on ``computer``, if one is registered."""
    query = orm.QueryBuilder().append(orm.Computer, filters={'id': computer.pk}, tag='computer')
    query.append(orm.InstalledCode, with_computer='computer', filters={'attributes.filepath_executable': executable})
    return query.first(flat=True)


def installed_code(
    computer: orm.Computer, executable: str, label: str, description: str, default_calc_job_plugin: str | None = None
) -> orm.InstalledCode:
    """Return the ``InstalledCode`` of ``executable`` on ``computer``, creating it (with ``label``) only once."""
    existing = existing_code(computer, executable)
    if existing is not None:
        return existing
    return orm.InstalledCode(
        label=label,
        computer=computer,
        filepath_executable=executable,
        default_calc_job_plugin=default_calc_job_plugin,
        description=description,
    ).store()


def sibling_code(code: orm.AbstractCode, name: str, create: bool = True) -> orm.InstalledCode:
    """Return the ``InstalledCode`` of tool ``name`` in the directory of ``code``'s executable.

    ``create``: register it if it does not exist yet. The workflows register the tools they need when they are
    created (``on_create``, before any step runs) and only look them up (``create=False``) inside their steps.
    """
    executable = str(PurePosixPath(str(code.get_executable())).parent / name)
    if code.computer is None:
        raise ValueError(f'{code.full_label} has no computer: no tool {name!r} beside it')
    if not create:
        existing = existing_code(code.computer, executable)
        if existing is None:
            raise ValueError(f'no code of {executable} on {code.computer.label!r}: give it as an input')
        return existing
    return installed_code(code.computer, executable, f'{name}-{code.label}', f'{name} beside {code.full_label}')
