"""check_targets: the loop's property targets on a validation table."""

from __future__ import annotations

import pytest

from aiida_mlip_autopipe.validation.targets import check_targets


def row(potential, reference, unit=''):
    error = None if potential is None else potential - reference
    relative = None if error is None or not reference else error / abs(reference)
    return {'potential': potential, 'reference': reference, 'error': error, 'relative_error': relative, 'unit': unit}


TABLE = {
    'Cu': {'B0': row(140.0, 134.0, 'GPa'), 'phonon_rmse': row(0.15, 0.0, 'THz'), 'lost_atoms': row(0, 0, 'runs')},
    'Al': {'B0': row(None, 40.0, 'GPa'), 'phonon_rmse': row(0.3, 0.0, 'THz'), 'lost_atoms': row(1, 0, 'runs')},
}


def test_targets_met():
    met, lines = check_targets(
        {'Cu': TABLE['Cu']}, {'B0': {'max_relative_error': 0.05}, 'phonon_rmse': {'max': 0.2}, 'lost_atoms': {'max': 0}}
    )
    assert met is True and len(lines) == 3
    assert lines[0] == 'Cu B0: |relative error| 0.04478 <= 0.05: met'
    assert lines[1] == 'Cu phonon_rmse: potential 0.15 THz <= 0.2: met'


def test_targets_not_met_say_which():
    """Every structure must meet every target; a missing value (an EOS without minimum) does not."""
    met, lines = check_targets(TABLE, {'B0': {'max_relative_error': 0.05}, 'phonon_rmse': {'max': 0.2}})
    assert met is False
    assert 'Al B0: no relative error (target max_relative_error 0.05): not met' in lines
    assert 'Al phonon_rmse: potential 0.3 THz <= 0.2: not met' in lines
    met, lines = check_targets(TABLE, {'B0': {'max_abs_error': 1.0}, 'C44': {'max_abs_error': 5}})
    assert met is False and 'Cu B0: |error| 6 GPa <= 1: not met' in lines and lines[3].startswith('Cu C44: no error')
    assert check_targets({}, {'B0': {'max': 1}}) == (False, ['no validated structure'])


@pytest.mark.parametrize(
    ('targets', 'message'),
    [
        ({'B0': {'within': 0.05}}, 'targets.B0.within: unknown; known are max, min, max_abs_error'),
        ({'B0': {'max': '5%'}}, "targets.B0.max: '5%' is not a number"),
        ({'B0': 0.05}, 'targets.B0: give a dict'),
    ],
)
def test_targets_refused(targets, message):
    with pytest.raises(ValueError, match=message):
        check_targets(TABLE, targets)
