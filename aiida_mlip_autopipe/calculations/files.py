"""The files of the plugin's jobs: the names that a calculation writes and retrieves and that its parser reads, in
one place that both import (a parser never imports its calculation)."""

from __future__ import annotations

import json
from typing import Any


class PacemakerFiles:
    """File names of a pacemaker job (a mixin: ``PacemakerCalculation.INPUT_FILE`` and friends)."""

    INPUT_FILE = 'input.yaml'
    TRAINING_NPZ = 'training_set.npz'
    TEST_NPZ = 'test_set.npz'
    TRAINING_PICKLE = 'training_data.pckl.gzip'
    TEST_PICKLE = 'test_data.pckl.gzip'
    INITIAL_POTENTIAL = 'initial_potential.yaml'
    IO_SCRIPT = 'pacemaker_io.py'
    #: what the calculation decided when it wrote ``input.yaml`` (settings used, filled, dropped; reference energy)
    SETTINGS_RECORD = 'aiida_settings_record.json'
    OUTPUT_YAML = 'output_potential.yaml'
    OUTPUT_YACE = 'output_potential.yace'
    LOG = 'log.txt'
    STDOUT = 'pacemaker.out'
    STDERR = 'pacemaker.err'
    PREPARE_LOG = 'aiida_prepare.log'
    PREPARE_STATUS = 'aiida_prepare.status'
    PACEMAKER_STATUS = 'aiida_pacemaker.status'
    YACE_LOG = 'pace_yaml2yace.log'
    YACE_STATUS = 'aiida_yaml2yace.status'
    PREDICTIONS_LOG = 'aiida_predictions.log'
    MISSING_EXECUTABLE = 'aiida_missing_executable.txt'
    JOB_STARTED = 'aiida_job_started'
    METRICS = 'metrics.txt'
    TEST_METRICS = 'test_metrics.txt'
    INTERIM_POTENTIAL = 'interim_potential_0.yaml'
    FITTING_DATA = 'fitting_data_info.pckl.gzip'
    THREADS = 'aiida_threads.txt'
    RETRIEVE = (
        MISSING_EXECUTABLE,
        LOG,
        STDOUT,
        STDERR,
        PREPARE_LOG,
        PREPARE_STATUS,
        PACEMAKER_STATUS,
        YACE_LOG,
        YACE_STATUS,
        PREDICTIONS_LOG,
        OUTPUT_YAML,
        OUTPUT_YACE,
        METRICS,
        TEST_METRICS,
        'cycle_metrics.txt',
        'test_cycle_metrics.txt',
        'ladder_metrics.txt',
        'test_ladder_metrics.txt',
        INTERIM_POTENTIAL,
        'interim_potential_best_cycle.yaml',
        'train_predictions.npz',
        'test_predictions.npz',
        FITTING_DATA,
        THREADS,
    )


class ExplorationFiles:
    """File names of an exploration job (a mixin of ``PacemakerExplorationCalculation``, read by its parser)."""

    SCRIPT = 'explore.py'
    IO_SCRIPT = 'pacemaker_io.py'
    PARAMETERS = 'parameters.json'
    STRUCTURES = 'structures.npz'
    POTENTIAL = 'potential.yaml'
    ACTIVE_SET = 'potential.asi'
    SUMMARY = 'exploration.json'
    SELECTED = 'selected.npz'
    CALIBRATION = 'calibration.npz'
    STDOUT = 'explore.out'
    STDERR = 'explore.err'
    STATUS = 'aiida_explore.status'


def settings_record(used: dict[str, Any], filled: dict[str, Any], dropped: list[str], reference: dict) -> str:
    """The JSON text of :attr:`PacemakerFiles.SETTINGS_RECORD`: the settings pacemaker reads (``settings_used``),
    what the plugin filled (only where the file has it), the ignored keys it dropped, and the reference-energy
    record (``reference_energy_source``/``_reason``); the parser adds it to the metrics as it is."""

    def value_at(dotted: str) -> Any:
        document: Any = used
        for part in dotted.split('.'):
            document = document.get(part) if isinstance(document, dict) else None
        return document

    record = {
        'settings_used': used,
        'settings_filled': {key: value for key, value in filled.items() if value_at(key) == value},
        'settings_dropped': dropped,
        **reference,
    }
    return json.dumps(record)
