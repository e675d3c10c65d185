"""Progress from anywhere: science code reports steps without being handed a runner.

``with progress.bar("MD frames", n) as advance: ... advance(info="T 300 K")`` shows a rich bar
(count, elapsed, remaining) while a :class:`~jaxbench.runner.Runner` with progress on is active,
and does nothing otherwise (library use, tests, ``--no-progress``). ``progress.spinner(message)``
is the same for work without steps. The runner installs its display with :func:`showing`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("jaxbench_progress", default=False)
_DISPLAY: contextvars.ContextVar = contextvars.ContextVar("jaxbench_display", default=None)


@contextlib.contextmanager
def showing(enabled: bool) -> Iterator[None]:
    """Turns progress display on (or off) for the code run inside the block."""
    token = _ACTIVE.set(enabled)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


@contextlib.contextmanager
def _display() -> Iterator:
    """The one live rich display (rich allows one at a time): nested bars become its rows."""
    display = _DISPLAY.get()
    if display is not None:
        yield display
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        SpinnerColumn(finished_text=" "),
        "[progress.description]{task.description}",
        BarColumn(),
        "{task.fields[count]}",
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        "{task.fields[info]}",
    )
    with Progress(*columns, transient=False) as display:
        token = _DISPLAY.set(display)
        try:
            yield display
        finally:
            _DISPLAY.reset(token)


@contextlib.contextmanager
def bar(description: str, total: int) -> Iterator[Callable[..., None]]:
    """A bar of ``total`` steps; yields ``advance(steps=1, info=None)``."""
    if not _ACTIVE.get() or total <= 1:
        yield lambda steps=1, info=None: None
        return
    with _display() as display:
        task = display.add_task(description, total=total, count=f"0/{total}", info="")
        done = [0]

        def advance(steps: int = 1, info: str | None = None) -> None:
            done[0] += steps
            display.update(task, advance=steps, count=f"{done[0]}/{total}", info=info or "")

        yield advance


@contextlib.contextmanager
def spinner(message: str) -> Iterator[None]:
    """A spinner with the elapsed time while work without steps runs (removed when done)."""
    if not _ACTIVE.get():
        yield
        return
    with _display() as display:
        task = display.add_task(message, total=None, count="", info="")
        try:
            yield
        finally:
            display.remove_task(task)
