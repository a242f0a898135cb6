"""``examples/active_learning_emt.py`` runs as users run it (one iteration here, to keep the suite short)."""

from __future__ import annotations

import pathlib
import runpy

import pytest

pytestmark = pytest.mark.pacemaker

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / 'examples' / 'active_learning_emt.py'


def test_active_learning_example(pacemaker_code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('MLIP_AUTOPIPE_CODE', pacemaker_code.full_label)
    monkeypatch.setenv('AL_MAX_ITERATIONS', '1')
    runpy.run_path(str(EXAMPLE), run_name='__main__')
    output = capsys.readouterr().out
    assert 'finished ok' in output
    lines = [line.split() for line in output.splitlines() if line.strip().startswith(('0 ', '1 '))]
    assert [line[0] for line in lines] == ['0', '1']
    assert int(lines[1][1]) > 0  # explored steps of iteration 1
    written = tmp_path / 'active_learning_output'
    assert sorted(path.name for path in written.iterdir()) == [
        'Cu_active_learning.asi',
        'Cu_active_learning.yace',
        'loop.png',
    ]
