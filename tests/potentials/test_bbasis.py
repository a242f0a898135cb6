"""The one reader of B-basis YAML potentials, on pacemaker's own output and on what is not one."""

from __future__ import annotations

import pathlib

import pytest

from aiida_mlip_autopipe.potentials.bbasis import BBasisError, read_bbasis

FIXTURES = pathlib.Path(__file__).parent.parent / 'parsers' / 'fixtures' / 'pacemaker'


def test_pacemakers_output_is_read():
    text = (FIXTURES / 'success_reference_energy' / 'output_potential.yaml').read_text()
    summary = read_bbasis(text)
    assert summary.has_global and summary.elements and summary.num_functions > 0
    assert summary.cutoff is not None and summary.cutoff > 0
    assert 'reference_energy' in summary.metadata  # pacemaker keeps its reference as a JSON string there
    assert read_bbasis(text.encode()) == summary


@pytest.mark.parametrize(
    ('text', 'fragment'),
    [
        ('[1, 2', 'not readable YAML'),
        ('a: 1\n', 'it has: a'),
        ('species: []\n', 'it has: species'),
        ('species:\n  - nbody: []\n', 'speciesblock entries'),
        ('just text', 'it has: str'),
    ],
)
def test_what_is_not_a_potential_is_one_line(text, fragment):
    with pytest.raises(BBasisError, match=fragment) as info:
        read_bbasis(text)
    assert '\n' not in str(info.value)


def test_a_potential_without_global_block_is_flagged():
    assert read_bbasis('species:\n  - speciesblock: Cu\n').has_global is False
