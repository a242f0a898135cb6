"""A ``settings-reference`` directive: a table of every key of a pydantic model, nested models flattened to dotted
keys, with its type, constraints and description, generated from the model itself (one source of truth)."""

from __future__ import annotations

import types
import typing

from generated_table import GeneratedTable
from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def _models_in(annotation) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation (``Model | None``, ``dict[str, Model]``, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for argument in typing.get_args(annotation):
        found += _models_in(argument)
    return found


def _type_name(annotation) -> str:
    """A short name: ``float``, ``list[float]``, ``'SBessel' | 'ChebExpCos'``; ``None`` left out (absent = default)."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(arguments[0])
    if origin is typing.Literal:
        return ' | '.join(repr(value) for value in arguments)
    if origin in (typing.Union, types.UnionType):
        return ' | '.join(_type_name(argument) for argument in arguments if argument is not type(None))
    if origin in (list, tuple):
        return f'{origin.__name__}[{", ".join(_type_name(argument) for argument in arguments if argument is not ...)}]'
    if origin is dict:
        return 'mapping'
    return getattr(annotation, '__name__', str(annotation))


def _constraints(annotation) -> list[str]:
    """Bounds, lengths and patterns found anywhere in the annotation's metadata."""
    found = []
    for item in getattr(annotation, '__metadata__', ()):
        for name in ('gt', 'ge', 'lt', 'le', 'min_length', 'max_length', 'pattern'):
            value = getattr(item, name, None)
            if value is not None:
                found.append(f'{name} {value}')
        for inner in getattr(item, 'metadata', ()):
            found += _constraints(typing.Annotated[object, inner])
    for argument in typing.get_args(annotation):
        if not isinstance(argument, str | int | float):
            found += _constraints(argument)
    return list(dict.fromkeys(found))


def _cell(text: str) -> str:
    return text.replace('|', '\\|').replace('\n', ' ')


def rows(model: type[BaseModel], prefix: str = '') -> list[tuple[str, str, str, str]]:
    """``(key, type, constraints, description)`` for every field, nested models flattened."""
    result = []
    for name, field in model.model_fields.items():
        key = f'{prefix}{field.alias or name}'
        nested = _models_in(field.annotation)
        description = ' '.join((field.description or '').split())
        if nested and nested[0] is not model:
            result.append((key, 'section', '', description or (nested[0].__doc__ or '').strip().split('\n')[0]))
            result += rows(nested[0], f'{key}.')
        else:
            bounds = _constraints(field.annotation)
            if field.metadata:  # constraints pydantic moved from the annotation to the field
                bounds = _constraints(typing.Annotated.__class_getitem__((field.annotation, *field.metadata)))
            if field.default is not None and field.default is not PydanticUndefined:
                bounds.append(f'default {field.default!r}')  # the plugin's own settings; pacemaker's have none
            result.append((key, _type_name(field.annotation), ', '.join(bounds), description))
    return result


class SettingsReference(GeneratedTable):
    """``.. settings-reference:: package.module.Model``"""

    def lines(self, model) -> list[str]:
        lines = ['| key | type | constraints | meaning |', '|---|---|---|---|']
        for key, kind, constraints, description in rows(model):
            shown = '*section*' if kind == 'section' else f'`{_cell(kind)}`'
            lines.append(f'| `{key}` | {shown} | {_cell(constraints)} | {_cell(description)} |')
        return lines


def setup(app):
    app.add_directive('settings-reference', SettingsReference)
    return {'parallel_read_safe': True}
