"""An ``exit-codes`` directive: the table of a process's exit codes, generated from its spec."""

from __future__ import annotations

import importlib

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


class ExitCodes(SphinxDirective):
    """``.. exit-codes:: package.module.ProcessClass``"""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module_name, _, class_name = self.arguments[0].rpartition('.')
        process = getattr(importlib.import_module(module_name), class_name)
        codes = sorted(process.exit_codes.items(), key=lambda item: item[1].status)
        lines = ['| status | label | message |', '|---|---|---|']
        for label, code in codes:
            message = ' '.join((code.message or '').split()).replace('|', '\\|')
            lines.append(f'| {code.status} | `{label}` | {message} |')
        container = nodes.section()
        self.state.nested_parse(StringList(lines), self.content_offset, container)
        return container.children


def setup(app):
    app.add_directive('exit-codes', ExitCodes)
    return {'parallel_read_safe': True}
