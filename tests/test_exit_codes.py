"""One exit-code table for the plugin: a number means one thing in every process (aiida-core's inherited codes aside).

Kinds (docs/reference/exit_codes.md): 2xx inputs a workflow refuses, 3xx missing or unreadable output (310: a known
unrecoverable failure, as aiida-quantumespresso), 4xx a failed run, 5xx a limit a workflow's handlers cannot mend.
"""

from __future__ import annotations

import importlib
import pathlib
import re
from collections import defaultdict

from aiida.engine import CalcJob, ExitCode, WorkChain

REPO = pathlib.Path(__file__).resolve().parent.parent


def plugin_processes() -> list[type]:
    """Every calculation and workflow the plugin registers (read from pyproject.toml, so none is forgotten)."""
    text = (REPO / 'pyproject.toml').read_text()
    processes = []
    for group in ('aiida.calculations', 'aiida.workflows'):
        section = text.split(f'[project.entry-points."{group}"]', 1)[1].split('\n[', 1)[0]
        for module, name in re.findall(r'^"[^"]+" = "([\w.]+):(\w+)"', section, flags=re.MULTILINE):
            processes.append(getattr(importlib.import_module(module), name))
    return processes


def own_exit_codes(process: type) -> dict[str, ExitCode]:
    """The codes ``process`` declares itself: those of its nearest aiida-core ancestor (same label) left out."""
    core = next(cls for cls in process.__mro__ if cls.__module__.startswith('aiida.') and hasattr(cls, 'spec'))
    inherited = {label for label, code in core.exit_codes.items() if process.exit_codes[label].status == code.status}
    return {label: code for label, code in process.exit_codes.items() if label not in inherited}


def extra_exit_codes() -> dict[str, dict[str, ExitCode]]:
    """Codes returned by the plugin's process functions (no spec to read them from), by process."""
    from aiida_mlip_autopipe.labellers.emt import EMT_FAILED

    return {'label_with_emt': {'ERROR_EMT_FAILED': ExitCode(EMT_FAILED)}}


def conflicts(codes_by_process: dict[str, dict[str, ExitCode]]) -> list[str]:
    """Numbers given two names, and names given two numbers, across the processes."""
    names, numbers = defaultdict(set), defaultdict(set)
    for process, codes in codes_by_process.items():
        for label, code in codes.items():
            names[code.status].add((label, process))
            numbers[label].add((code.status, process))
    found = [
        f'{status}: ' + ', '.join(sorted(f'{label} ({process})' for label, process in users))
        for status, users in sorted(names.items())
        if len({label for label, _ in users}) > 1
    ]
    found += [
        f'{label}: ' + ', '.join(sorted(f'{status} ({process})' for status, process in users))
        for label, users in sorted(numbers.items())
        if len({status for status, _ in users}) > 1
    ]
    return found


def all_codes() -> dict[str, dict[str, ExitCode]]:
    return {process.__name__: own_exit_codes(process) for process in plugin_processes()} | extra_exit_codes()


def test_every_process_of_the_plugin_is_checked():
    names = {process.__name__ for process in plugin_processes()}
    assert {'PacemakerCalculation', 'PacemakerExplorationCalculation', 'PacemakerBaseWorkChain'} <= names
    assert {'PacemakerTrainingWorkChain', 'PacemakerActiveLearningWorkChain'} <= names


def test_one_number_one_meaning_across_the_plugin():
    found = conflicts(all_codes())
    assert not found, 'exit codes with two meanings:\n' + '\n'.join(found)


def test_unrecoverable_is_310_in_every_workflow_and_numbers_follow_their_kind():
    codes = all_codes()
    for process in ('PacemakerBaseWorkChain', 'PacemakerTrainingWorkChain'):
        assert codes[process]['ERROR_UNRECOVERABLE_FAILURE'].status == 310
    for process, own in codes.items():
        for label, code in own.items():
            assert 200 <= code.status < 600, (process, label, code.status)  # 0-199: aiida-core's


def test_the_check_finds_a_number_with_two_meanings():
    class First(CalcJob):
        @classmethod
        def define(cls, spec):
            super().define(spec)
            spec.exit_code(301, 'ERROR_A', message='a')

    class Second(WorkChain):
        @classmethod
        def define(cls, spec):
            super().define(spec)
            spec.exit_code(301, 'ERROR_B', message='b')
            spec.exit_code(302, 'ERROR_A', message='a elsewhere')

    found = conflicts({cls.__name__: own_exit_codes(cls) for cls in (First, Second)})
    assert found == ['301: ERROR_A (First), ERROR_B (Second)', 'ERROR_A: 301 (First), 302 (Second)']
