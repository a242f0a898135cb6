"""Property targets on a validation table (the loop's ``convergence`` may name them): e.g.
``{'phonon_rmse': {'max': 0.2}, 'B0': {'max_relative_error': 0.05}, 'lost_atoms': {'max': 0}}``."""

from __future__ import annotations

__all__ = ('CHECKS', 'check_targets')

#: the kinds of target: what they compare (a row's key, absolute or not) and how
CHECKS = {
    'max': ('potential', False, '<='),
    'min': ('potential', False, '>='),
    'max_abs_error': ('error', True, '<='),
    'max_relative_error': ('relative_error', True, '<='),
}


def check_targets(properties: dict, targets: dict) -> tuple[bool, list[str]]:
    """Whether every structure of the validation table ``properties`` (``{structure: {quantity: {potential,
    reference, error, relative_error, unit}}}``) meets every target, and one line per check (met or not).

    A quantity a structure lacks (or whose value is ``None``, e.g. an EOS without minimum) does not meet its target.
    ``ValueError`` for a target kind other than those of :data:`CHECKS` or a limit that is not a number.
    """
    for quantity, limits in targets.items():
        if not isinstance(limits, dict) or not limits:
            raise ValueError(f'targets.{quantity}: give a dict such as {{"max": 0.2}}, not {limits!r}')
        for kind, limit in limits.items():
            if kind not in CHECKS:
                raise ValueError(f'targets.{quantity}.{kind}: unknown; known are {", ".join(CHECKS)}')
            if isinstance(limit, bool) or not isinstance(limit, int | float):
                raise ValueError(f'targets.{quantity}.{kind}: {limit!r} is not a number')
    if not properties:
        return False, ['no validated structure']
    met, lines = True, []
    for structure, quantities in sorted(properties.items()):
        for quantity, limits in targets.items():
            row = quantities.get(quantity)
            for kind, limit in limits.items():
                key, absolute, relation = CHECKS[kind]
                value = None if row is None else row.get(key)
                if value is None:
                    met = False
                    lines.append(f'{structure} {quantity}: no {key.replace("_", " ")} (target {kind} {limit}): not met')
                    continue
                value = abs(value) if absolute else value
                ok = value <= limit if relation == '<=' else value >= limit
                met = met and ok
                unit = '' if key == 'relative_error' or row.get('unit') in (None, '') else f' {row["unit"]}'
                shown = f'|{key.replace("_", " ")}|' if absolute else key
                verdict = 'met' if ok else 'not met'
                lines.append(f'{structure} {quantity}: {shown} {value:.4g}{unit} {relation} {limit:g}: {verdict}')
    return met, lines
