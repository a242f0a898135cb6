"""Several exploration jobs per iteration: how the loop deals out the starts and merges the jobs' summaries and
selections (the real loop with two jobs: ``test_loop.py``)."""

from __future__ import annotations

import pytest
from aiida import orm
from ase.build import bulk

from aiida_mlip_autopipe.workflows.active_learning import exploration_shares, merged_selection, merged_summary

pytestmark = pytest.mark.usefixtures('aiida_profile')


@pytest.mark.parametrize(
    ('count', 'jobs', 'sizes'),
    [(3, 1, [3]), (3, 2, [2, 1]), (5, 5, [1] * 5), (7, 3, [3, 2, 2]), (2, 9, [1, 1])],
)
def test_starts_are_dealt_out_among_the_jobs(count, jobs, sizes):
    labels = [f'start_{index}' for index in range(count)]
    shares = exploration_shares(labels, jobs)
    assert [len(share) for share in shares] == sizes
    assert sorted(label for share in shares for label in share) == labels


def summary(steps: int, above: int, gamma: float | None, candidates: int) -> dict:
    return {
        'trajectories': 2,
        'explored_steps': steps,
        'steps_above_gamma_lo': above,
        'fraction_above_gamma_lo': above / steps if steps else 0.0,
        'max_gamma': gamma,
        'stopped_at_gamma_hi': 1,
        'candidates': candidates,
        'refused_candidates': 1,
    }


def test_summaries_are_merged_over_all_steps():
    one = summary(100, 50, 4.0, 3)
    assert merged_summary([one]) is one
    merged = merged_summary([one, summary(300, 30, 9.5, 2), summary(0, 0, None, 0)])
    assert merged['explored_steps'] == 400 and merged['steps_above_gamma_lo'] == 80
    assert merged['fraction_above_gamma_lo'] == pytest.approx(0.2)  # by steps, not the mean of 0.5, 0.1 and 0
    assert merged['max_gamma'] == 9.5 and merged['candidates'] == 5 and merged['refused_candidates'] == 3
    assert merged['trajectories'] == 6 and merged['stopped_at_gamma_hi'] == 3
    assert merged_summary([summary(0, 0, None, 0)] * 2)['fraction_above_gamma_lo'] == 0.0


def structure(gamma: float) -> orm.StructureData:
    node = orm.StructureData(ase=bulk('Cu', 'fcc', a=3.6))
    node.base.attributes.set('exploration', {'gamma': gamma})
    return node


def test_selections_are_taken_in_turn_from_each_job_by_descending_gamma():
    first = {'s0': structure(2.0), 's1': structure(7.0), 's2': structure(3.0)}
    second = {'s0': structure(5.0)}
    merged = merged_selection([first, second])
    assert list(merged) == ['job_00_s1', 'job_01_s0', 'job_00_s2', 'job_00_s0']
    assert merged['job_01_s0'] is second['s0']
    # a cut at max_per_iteration=2 keeps each job's most extrapolative structure
    assert [merged[label].base.attributes.get('exploration')['gamma'] for label in list(merged)[:2]] == [7.0, 5.0]
    assert merged_selection([first]) == first  # one job: its labels unchanged
    assert merged_selection([{}, second]) == {'job_01_s0': second['s0']}
