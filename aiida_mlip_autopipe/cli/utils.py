"""What every command shares: one-line errors, ranges of row ids, a progress bar."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator

import click
from aiida.cmdline.utils import echo

MAX_ERROR_LENGTH = 1000  # room for two long paths, not for a 189 KB argument


def one_line_errors(command: Callable) -> Callable:
    """Turn any exception of ``command`` into one ``Critical:`` line (at most 1000 characters) and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exception:  # the command line never shows a traceback
            message = ' '.join(str(exception).split())
            if not isinstance(exception, ValueError | OSError) or not message:  # e.g. a KeyError: name its kind
                message = f'{type(exception).__name__}: {message}'
            if len(message) > MAX_ERROR_LENGTH:
                message = message[: MAX_ERROR_LENGTH - 3] + '...'
            echo.echo_critical(message)

    return wrapper


def ranges(ids: Iterable[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` as ``'1-3, 7, 9-10'`` (readable for 100,000 row ids)."""
    values = sorted(set(ids))
    if not values:
        return 'none'
    parts, start, previous = [], values[0], values[0]
    for value in values[1:]:
        if value != previous + 1:
            parts.append(str(start) if start == previous else f'{start}-{previous}')
            start = value
        previous = value
    parts.append(str(start) if start == previous else f'{start}-{previous}')
    return ', '.join(parts)


@contextlib.contextmanager
def progress_bar(label: str, length: int | None) -> Iterator[Callable[[int], None]]:
    """A click progress bar on stderr when it is a terminal; yields ``update(done)`` (``done``: finished so far).

    Not on a terminal (a pipe, a log file, a test) nothing is drawn, so an error stays the only line."""
    stream = click.get_text_stream('stderr')
    if not stream.isatty():
        yield lambda done: None
        return
    unknown = iter(()) if length is None else None  # click needs an iterable when the length is unknown
    with click.progressbar(unknown, length=length, label=label, file=stream, show_pos=True) as bar:
        state = {'done': 0}

        def update(done: int) -> None:
            bar.update(done - state['done'])
            state['done'] = done

        yield update
