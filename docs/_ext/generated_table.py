"""The base of the directives that turn an object named by its dotted path into a Markdown table."""

from __future__ import annotations

import importlib

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


class GeneratedTable(SphinxDirective):
    """``.. directive:: package.module.Object``: the table of :meth:`lines` for that object."""

    required_arguments = 1

    def lines(self, target) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        module_name, _, name = self.arguments[0].rpartition('.')
        target = getattr(importlib.import_module(module_name), name)
        container = nodes.section()
        self.state.nested_parse(StringList(self.lines(target)), self.content_offset, container)
        return container.children
