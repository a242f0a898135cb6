"""``PacemakerExplorationCalculation``: MD with a potential and its active set, then D-optimal selection.

The job runs ``explore.py`` (a job script that needs pyace, ase, numpy and pandas only) with the Python interpreter
of a pacemaker installation, on whichever computer that is: a cluster node as well as this machine. It writes the
selected configurations and the extrapolation grades of every step; the parser turns them into ``StructureData``
(one per selected configuration, with where it came from) and a summary.
"""

from __future__ import annotations

import io
import json
from importlib import resources

import numpy as np
from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

from aiida_mlip_autopipe.active_learning.settings import ExplorationSettings, SelectionSettings
from aiida_mlip_autopipe.calculations.files import ExplorationFiles
from aiida_mlip_autopipe.calculations.settings import settings_validator
from aiida_mlip_autopipe.jobscripts.pacemaker_io import atoms_arrays

__all__ = ('PacemakerExplorationCalculation',)


def validate_inputs(inputs, _) -> str | None:
    """The potential must be a B-basis YAML (pyace's active set needs it) and the active set a ``.asi``."""
    potential = inputs.get('potential')
    if potential is not None and not potential.filename.endswith(('.yaml', '.yml')):
        return f'potential {potential.filename!r}: give the B-basis YAML (e.g. `potential_yaml`); the grade needs it'
    active_set = inputs.get('active_set')
    if active_set is not None and not active_set.filename.endswith('.asi'):
        return f'active_set {active_set.filename!r}: give the .asi file written by pace_activeset'
    if 'structures' in inputs and not inputs['structures']:
        return 'give at least one starting structure'
    return None


class PacemakerExplorationCalculation(ExplorationFiles, CalcJob):
    """Explore with an ACE potential (MD, extrapolation grade per atom and step) and select what to label."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            'code',
            valid_type=orm.AbstractCode,
            help='A Python interpreter with pyace: the `python3` of the pacemaker installation.',
        )
        spec.input('potential', valid_type=orm.SinglefileData, help='The B-basis YAML potential (`potential_yaml`).')
        spec.input('active_set', valid_type=orm.SinglefileData, help='Its active set (.asi, from pace_activeset).')
        spec.input_namespace(
            'structures', valid_type=orm.StructureData, dynamic=True, help='Starting configurations of the MD.'
        )
        spec.input(
            'exploration',
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            validator=settings_validator(ExplorationSettings),
            help='MD settings (ExplorationSettings): temperatures_K, steps, timestep_fs, ensemble, strain, rattle...',
        )
        spec.input(
            'selection',
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            validator=settings_validator(SelectionSettings),
            help='Selection settings (SelectionSettings): gamma_lo, gamma_hi, max_per_iteration, method.',
        )
        spec.input(
            'min_distances',
            valid_type=orm.Dict,
            required=False,
            help="Shortest distance (Å) per element pair in the data, keyed by atomic numbers ('29-29'; '*': any "
            'other pair): candidates closer than selection.min_distance_ratio times it are refused.',
        )
        spec.inputs.validator = validate_inputs
        options = spec.inputs['metadata']['options']
        options['resources'].default = lambda: {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        options['parser_name'].default = 'mlip_autopipe.exploration'
        options['withmpi'].default = False

        spec.output_namespace(
            'selected',
            valid_type=orm.StructureData,
            dynamic=True,
            required=False,
            help='The selected configurations; attribute `exploration` says trajectory, step, gamma, temperature.',
        )
        spec.output_namespace(
            'calibration',
            valid_type=orm.StructureData,
            dynamic=True,
            required=False,
            help='Explored frames below gamma_lo drawn at random (selection.calibration_samples), to be labelled too.',
        )
        spec.output('summary', valid_type=orm.Dict, help='Explored steps, fraction above gamma_lo, max gamma, ...')
        spec.output('gamma', valid_type=orm.ArrayData, help='Max gamma per step of each trajectory (NaN-padded).')
        spec.default_output_node = 'summary'

        spec.exit_code(
            300, 'ERROR_OUTPUT_MISSING', message='the exploration wrote no {name}: {line}', invalidates_cache=True
        )
        spec.exit_code(
            308,
            'ERROR_OUTPUT_UNREADABLE',
            message='the exploration output cannot be read: {line}',
            invalidates_cache=True,
        )
        spec.exit_code(
            309,
            'ERROR_SUMMARY_MALFORMED',
            message='the exploration summary exploration.json does not match selected.npz: {line}',
            invalidates_cache=True,
        )
        spec.exit_code(450, 'ERROR_EXPLORATION_FAILED', message='the exploration exited with status {status}: {line}')

    def processes(self) -> int:
        """Worker processes of the job script: the job's ``num_mpiprocs_per_machine`` (the computer's default when
        the resources do not say; the script runs on one machine, without MPI)."""
        resources = self.node.get_option('resources') or {}
        count = resources.get('num_mpiprocs_per_machine')
        if not count and self.node.computer is not None:
            count = self.node.computer.get_default_mpiprocs_per_machine()
        return max(1, int(count or 1))

    def prepare_for_submission(self, folder):
        """Write the parameters, the starting structures and the job scripts; copy potential and active set."""
        structures = [self.inputs.structures[label] for label in sorted(self.inputs.structures)]
        buffer = io.BytesIO()
        np.savez(buffer, **atoms_arrays([structure.get_ase() for structure in structures]))
        buffer.seek(0)
        folder.create_file_from_filelike(buffer, self.STRUCTURES, mode='wb')
        parameters = {
            'potential': self.POTENTIAL,
            'active_set': self.ACTIVE_SET,
            'structures': self.STRUCTURES,
            'exploration': ExplorationSettings.model_validate(self.inputs.exploration.get_dict()).model_dump(),
            'selection': SelectionSettings.model_validate(self.inputs.selection.get_dict()).model_dump(),
            'min_distances': self.inputs.min_distances.get_dict() if 'min_distances' in self.inputs else {},
            'processes': self.processes(),
        }
        folder.create_file_from_filelike(io.StringIO(json.dumps(parameters, indent=1)), self.PARAMETERS, mode='w')
        scripts = resources.files('aiida_mlip_autopipe.jobscripts')
        for name in (self.SCRIPT, self.IO_SCRIPT):
            folder.create_file_from_filelike(io.StringIO(scripts.joinpath(name).read_text('utf-8')), name, mode='w')

        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = [self.SCRIPT, self.PARAMETERS]
        codeinfo.stdout_name = self.STDOUT
        codeinfo.stderr_name = self.STDERR
        codeinfo.withmpi = False

        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = [
            (self.inputs.potential.uuid, self.inputs.potential.filename, self.POTENTIAL),
            (self.inputs.active_set.uuid, self.inputs.active_set.filename, self.ACTIVE_SET),
        ]
        calcinfo.append_text = f'echo "$?" > {self.STATUS}'
        calcinfo.retrieve_list = [self.SUMMARY, self.SELECTED, self.CALIBRATION, self.STDOUT, self.STDERR, self.STATUS]
        return calcinfo
