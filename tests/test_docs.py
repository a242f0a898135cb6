"""The documentation site builds with warnings as errors; the settings reference covers every key."""

import html
import pathlib
import re
import subprocess
import sys

import pytest
from pydantic import BaseModel

from aiida_mlip_autopipe.active_learning.settings import (
    ConvergenceSettings,
    ExplorationSettings,
    RefitSettings,
    SelectionSettings,
)
from aiida_mlip_autopipe.calculations.settings import PacemakerSettings
from aiida_mlip_autopipe.trainer import TrainingConfig

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / 'docs' / '_ext'))


def text_of(page: pathlib.Path) -> str:
    """The visible text of an HTML page, whitespace collapsed."""
    return html.unescape(' '.join(re.sub(r'<[^>]+>', ' ', page.read_text()).split()))


def test_the_docs_build_without_warnings(tmp_path):
    """sphinx-build -W: API (autodoc), process specs (aiida-core's extension), CLI (sphinx-click), references."""
    result = subprocess.run(
        [str(REPO / '.venv' / 'bin' / 'sphinx-build'), '-W', '--keep-going', '-q', '-b', 'html', 'docs', tmp_path],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    exit_codes = text_of(tmp_path / 'reference' / 'exit_codes.html')
    assert '310 ERROR_UNRECOVERABLE_FAILURE' in exit_codes and '401 ERROR_DATASET_CONVERSION_FAILED' in exit_codes
    assert 'Usage mlip-autopipe export [ OPTIONS ] POTENTIAL' in text_of(tmp_path / 'reference' / 'cli.html')
    processes = text_of(tmp_path / 'reference' / 'processes.html')
    assert 'PacemakerTrainingWorkChain' in processes and 'handler_overrides' in processes
    reference = text_of(tmp_path / 'reference' / 'settings_reference.html')
    assert 'fit.loss.kappa' in reference
    assert 'temperatures_K list[float] min_length 1, gt 0, default [300.0, 800.0]' in reference
    assert 'PacemakerActiveLearningWorkChain' in processes and 'PacemakerExplorationCalculation' in processes
    assert '460 ERROR_LABELLING_FAILED' in exit_codes and '450 ERROR_EXPLORATION_FAILED' in exit_codes
    loop = text_of(tmp_path / 'active_learning.html')
    assert 'Measured: the loop against random sampling' in loop and 'random MD snapshots' in loop  # the include


@pytest.mark.parametrize(
    'model',
    [PacemakerSettings, TrainingConfig, ExplorationSettings, SelectionSettings, ConvergenceSettings, RefitSettings],
)
def test_every_settings_key_has_a_meaning(model: type[BaseModel]):
    from settings_reference import rows

    undocumented = [key for key, _, _, meaning in rows(model) if not meaning]
    assert not undocumented, f'give these fields a docstring or description: {undocumented}'
