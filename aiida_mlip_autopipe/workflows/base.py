"""``PacemakerBaseWorkChain``: run a ``PacemakerCalculation`` and react to its failures."""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ExitCode, ProcessHandlerReport, process_handler, while_

from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation

__all__ = ('PacemakerBaseWorkChain',)


class PacemakerBaseWorkChain(BaseRestartWorkChain):
    """Run a ``PacemakerCalculation`` (inputs under the ``pacemaker`` namespace) with restart handlers."""

    _process_class = PacemakerCalculation

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(PacemakerCalculation, namespace='pacemaker')
        spec.expose_outputs(PacemakerCalculation)
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(
                cls.run_process,
                cls.inspect_process,
            ),
            cls.results,
        )

    def setup(self):
        """Take the calculation's inputs from the ``pacemaker`` namespace."""
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(PacemakerCalculation, 'pacemaker'))

    @process_handler(priority=0)
    def handle_unrecoverable_failure(self, node: orm.CalcJobNode) -> ProcessHandlerReport | None:
        """Any failure no other handler fixed: stop with the calculation's own exit code and message."""
        if not node.is_failed:
            return None
        self.report(f'{node.process_label}<{node.pk}> failed [{node.exit_status}]: {node.exit_message}')
        return ProcessHandlerReport(True, ExitCode(node.exit_status, node.exit_message))
