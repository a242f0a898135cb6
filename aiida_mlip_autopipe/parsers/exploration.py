"""``ExplorationParser``: the selected configurations (``StructureData`` with where they came from), the summary
and the extrapolation grades of an exploration job; only the retrieved files are read."""

from __future__ import annotations

import io
import json

import numpy as np
from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser

from aiida_mlip_autopipe.calculations.files import ExplorationFiles as Files
from aiida_mlip_autopipe.jobscripts.pacemaker_io import build_atoms, split_per_structure
from aiida_mlip_autopipe.parsers.pacemaker import last_error_line

__all__ = ('ExplorationParser',)


def padded_gamma(trajectories: list[dict]) -> np.ndarray:
    """Max gamma per step of each trajectory as one (trajectories, longest + 1) array, NaN after a trajectory ends."""
    length = max((len(record['gamma']) for record in trajectories), default=0)
    table = np.full((len(trajectories), length), np.nan)
    for index, record in enumerate(trajectories):
        table[index, : len(record['gamma'])] = record['gamma']
    return table


class ExplorationParser(Parser):
    """Parse the retrieved files of a ``PacemakerExplorationCalculation``."""

    def _read(self, name: str) -> bytes | None:
        if name not in self.retrieved.base.repository.list_object_names():
            return None
        return self.retrieved.base.repository.get_object_content(name, mode='rb')

    @staticmethod
    def _start_label(starts: list[str], index: int) -> str:
        """The input label of starting structure ``index`` (its index as text without the input)."""
        return starts[index] if index < len(starts) else str(index)

    def parse(self, **kwargs) -> ExitCode | None:
        stderr = (self._read(Files.STDERR) or b'').decode('utf-8', errors='replace')
        line = last_error_line(stderr) or (stderr.strip().splitlines() or ['(no error message)'])[-1]
        status_text = (self._read(Files.STATUS) or b'').decode('utf-8', errors='replace').strip()
        if status_text and status_text != '0':
            return self.exit_codes.ERROR_EXPLORATION_FAILED.format(status=status_text, line=line)
        summary_bytes, selected_bytes = self._read(Files.SUMMARY), self._read(Files.SELECTED)
        if summary_bytes is None:
            return self.exit_codes.ERROR_OUTPUT_MISSING.format(name=Files.SUMMARY, line=line)
        if selected_bytes is None:
            return self.exit_codes.ERROR_OUTPUT_MISSING.format(name=Files.SELECTED, line=line)
        try:
            summary = json.loads(summary_bytes)
            with np.load(io.BytesIO(selected_bytes), allow_pickle=False) as handle:
                selected = {key: handle[key] for key in handle.files}
            build_atoms(selected)  # readable as structures
        except (ValueError, KeyError, OSError) as exception:
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(line=f'{type(exception).__name__}: {exception}')

        try:
            outputs = self._build(summary, selected)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exception:
            return self.exit_codes.ERROR_SUMMARY_MALFORMED.format(line=f'{type(exception).__name__}: {exception}')
        calibration_bytes = self._read(Files.CALIBRATION)
        if calibration_bytes is not None:  # written by explore.py since calibration frames exist
            try:
                with np.load(io.BytesIO(calibration_bytes), allow_pickle=False) as handle:
                    arrays = {key: handle[key] for key in handle.files}
                calibration = self._structures(arrays, summary['per_trajectory'], self._starts())
            except (ValueError, KeyError, IndexError, OSError) as exception:
                return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(
                    line=f'{Files.CALIBRATION}: {type(exception).__name__}: {exception}'
                )
            outputs.update({f'calibration.structure_{i:04d}': node for i, node in enumerate(calibration)})
        for label, node in outputs.items():  # attached only once every output is built
            self.out(label, node)
        return None

    def _starts(self) -> list[str]:
        return sorted(self.node.inputs.structures) if 'structures' in self.node.inputs else []

    def _build(self, summary: dict, selected: dict) -> dict[str, orm.Data]:
        """``gamma``, ``summary`` and ``selected.*`` built from the summary and ``selected.npz``; raise if malformed."""
        trajectories = summary['per_trajectory']
        gamma = orm.ArrayData()
        gamma.set_array('max_gamma', padded_gamma(trajectories))
        gamma.set_array('temperature_K', np.asarray([record['temperature_K'] for record in trajectories], dtype=float))
        gamma.set_array('start', np.asarray([record['start'] for record in trajectories], dtype=np.int64))
        outputs: dict[str, orm.Data] = {'gamma': gamma}
        table = {**summary, 'per_trajectory': [{k: v for k, v in r.items() if k != 'gamma'} for r in trajectories]}
        outputs['summary'] = orm.Dict(table)
        for index, structure in enumerate(self._structures(selected, trajectories, self._starts())):
            outputs[f'selected.structure_{index:04d}'] = structure
        return outputs

    def _structures(self, arrays: dict, trajectories: list[dict], starts: list[str]) -> list[orm.StructureData]:
        """The frames of ``selected.npz`` / ``calibration.npz`` as ``StructureData`` with attribute ``exploration``:
        trajectory, start, step, gamma (max and per atom), temperature, and the potential's energy and forces."""
        structures = []
        natoms = arrays['natoms']
        per_atom = split_per_structure(arrays['atom_gamma'], natoms) if 'atom_gamma' in arrays else []
        forces = split_per_structure(arrays['predicted_forces'], natoms) if 'predicted_forces' in arrays else []
        for index, configuration in enumerate(build_atoms(arrays)):
            structure = orm.StructureData(ase=configuration)
            trajectory = int(arrays['trajectory'][index])
            origin = {
                'trajectory': trajectory,
                'start': self._start_label(starts, trajectories[trajectory]['start']),
                'step': int(arrays['step'][index]),
                'gamma': float(arrays['gamma'][index]),
                'temperature_K': float(arrays['temperature'][index]),
                'gamma_per_atom': [float(value) for value in per_atom[index]] if len(per_atom) else None,
            }
            if 'predicted_energy' in arrays:
                origin['predicted_energy'] = float(arrays['predicted_energy'][index])
                origin['predicted_forces'] = np.asarray(forces[index], dtype=float).tolist()
            structure.base.attributes.set('exploration', origin)
            structures.append(structure)
        return structures
