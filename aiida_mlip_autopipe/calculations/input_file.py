"""Render pacemaker's ``input.yaml`` from a Jinja2 template, safely, and read it back as pacemaker does.

Every value goes through the ``yaml`` filter, which emits a YAML flow scalar, sequence or mapping in which all
strings are double-quoted with escapes: a value can never open a new line, a new key, an anchor or a tag.
Mapping keys written by a template go through the ``key`` filter, which accepts plain identifiers only.

There is one YAML dialect here, pacemaker's: ``pacemaker`` reads ``input.yaml`` with
``ruamel.yaml.YAML(typ='safe', pure=True)`` (YAML 1.2: ``010`` is 10, ``1:30`` is a string, ``yes`` is a string;
a duplicate key is an error). :func:`read_pacemaker_yaml` is that reader, and everything the plugin checks or
records about a rendered file goes through it.
"""

from __future__ import annotations

import json
import math
import re
from importlib import resources
from typing import Any

import jinja2
import jinja2.sandbox
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from aiida_mlip_autopipe import __version__

__all__ = ('InputFileError', 'default_template', 'load_input', 'read_pacemaker_yaml', 'render_input', 'yaml_value')

_IDENTIFIER = re.compile(r'^[A-Za-z_][A-Za-z0-9_\-]*$')


class InputFileError(ValueError):
    """The rendered ``input.yaml`` is not what the settings say (or cannot be rendered)."""


def yaml_value(value: Any) -> str:
    """Return ``value`` as a single-line YAML flow value that parses back to exactly ``value``."""
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputFileError(f'cannot write the non-finite number {value!r}')
        text = repr(value)
        mantissa, _, exponent = text.partition('e')
        if exponent and '.' not in mantissa:  # YAML 1.1 readers need a dot in 1e-08
            text = f'{mantissa}.0e{exponent}'
        return text
    if isinstance(value, str):  # JSON's escapes, but \UXXXXXXXX beyond the BMP (YAML has no surrogate pairs)
        return ''.join(
            character
            if ord(character) < 0x7F
            else f'\\u{ord(character):04x}'
            if ord(character) <= 0xFFFF
            else f'\\U{ord(character):08x}'
            for character in json.dumps(value, ensure_ascii=False)
        )
    if isinstance(value, dict):
        items = ', '.join(f'{yaml_value(str(key))}: {yaml_value(item)}' for key, item in value.items())
        return '{' + items + '}'
    if isinstance(value, list | tuple):
        return '[' + ', '.join(yaml_value(item) for item in value) + ']'
    raise InputFileError(f'cannot write a value of type {type(value).__name__}: {value!r}')


def yaml_key(key: Any) -> str:
    """Return ``key`` if it is a plain identifier usable as a block-style YAML key."""
    if not isinstance(key, str) or not _IDENTIFIER.match(key):
        raise InputFileError(f'refusing to write the mapping key {key!r}: only plain identifiers are allowed')
    return key


_OTHER_TEMPLATES = (jinja2.nodes.Include, jinja2.nodes.Import, jinja2.nodes.FromImport, jinja2.nodes.Extends)


def _strict(function):
    """Wrap a filter so that an undefined variable raises Jinja2's ``UndefinedError`` (naming it)."""

    def wrapped(value):
        if isinstance(value, jinja2.Undefined):
            str(value)  # StrictUndefined raises here with the variable's name
        return function(value)

    return wrapped


def default_template() -> str:
    """Return the text of the template shipped with the package."""
    return resources.files('aiida_mlip_autopipe.templates').joinpath('input.yaml.j2').read_text(encoding='utf-8')


def render_input(document: dict[str, Any], template: str | None = None) -> str:
    """Render ``document`` (the ``input.yaml`` dictionary) with ``template`` (default: the shipped one).

    The template sees the document's sections as variables: always ``potential``, ``data`` and ``backend``; ``seed``,
    ``fit`` and ``metadata`` only when the settings give them (test with ``is defined``); plus ``plugin_version``.
    Other undefined variables are errors.
    """
    environment = jinja2.sandbox.ImmutableSandboxedEnvironment(  # a user's template must not reach Python
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True, trim_blocks=False
    )
    environment.filters['yaml'] = _strict(yaml_value)
    environment.filters['key'] = _strict(yaml_key)
    try:
        source = template if template is not None else default_template()
        # a template is one self-contained file: there is nothing to include, import or extend (no loader)
        for node in environment.parse(source).find_all(_OTHER_TEMPLATES):
            tag = type(node).__name__.lower().replace('fromimport', 'from ... import')
            raise InputFileError(f'the input.yaml template uses {{% {tag} %}} (line {node.lineno}): give one file')
        compiled = environment.from_string(source)
        return compiled.render(plugin_version=__version__, **document)
    except jinja2.UndefinedError as exception:
        raise InputFileError(f'the input.yaml template uses an undefined variable: {exception}') from exception
    except jinja2.TemplateSyntaxError as exception:
        raise InputFileError(f'the input.yaml template has a syntax error: {exception}') from exception
    except jinja2.sandbox.SecurityError as exception:
        raise InputFileError(f'the input.yaml template tried an unsafe operation: {exception}') from exception


def read_pacemaker_yaml(text: str) -> Any:
    """Parse ``text`` exactly as pacemaker reads ``input.yaml`` (``pyace/cli/pacemaker.py``: ruamel, safe, pure).

    Raises :class:`InputFileError` with a one-line message (e.g. a duplicate key, which pacemaker refuses too).
    """
    try:
        return YAML(typ='safe', pure=True).load(text)
    except YAMLError as exception:
        message = _one_line(exception)
        raise InputFileError(f'not valid YAML as pacemaker reads it (ruamel, YAML 1.2): {message}') from None


def _one_line(exception: Exception) -> str:
    """A ruamel error on one line: its problem and where (``found duplicate key "maxiter" ... line 5``)."""
    problem = getattr(exception, 'problem', None)
    mark = getattr(exception, 'problem_mark', None) or getattr(exception, 'context_mark', None)
    if problem:
        where = f' (line {mark.line + 1}, column {mark.column + 1})' if mark is not None else ''
        problem = ' '.join(problem.split())
        return f'{problem}{where}'
    return ' '.join(str(exception).split())


def load_input(text: str) -> dict[str, Any]:
    """Parse a rendered ``input.yaml`` as pacemaker does; it must be a mapping with the required sections."""
    try:
        document = read_pacemaker_yaml(text)
    except InputFileError as exception:
        raise InputFileError(f'the rendered input.yaml is {exception}') from None
    if not isinstance(document, dict):
        raise InputFileError('the rendered input.yaml is not a mapping')
    missing = [section for section in ('potential', 'backend', 'data') if section not in document]
    if missing:
        raise InputFileError(f'the rendered input.yaml lacks the section(s) {", ".join(missing)}')
    return document
