"""What every ``alphaforge`` command shares: consoles, the error guard, spinners and bars.

An :class:`~alphaforge.errors.AlphaforgeError` raised inside :func:`guard` prints one red line on
stderr and exits with status 2; anything else keeps its traceback (a bug, not a user error).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from alphaforge.errors import AlphaforgeError

# piped output gets a fixed width wide enough for the metrics table instead of rich's 80
out = Console(width=None if sys.stdout.isatty() else 132)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 132)

#: progress(stage, done, total, description), as the library's callbacks call it
Progress_ = Callable[[str, int, int, str], None]


def setup_logging(verbose: bool) -> None:
    """Send the library's log records to stderr: WARNING and up, or INFO with ``verbose``."""
    # the handler's level decides what reaches the terminal; run.log gets INFO regardless
    level = logging.INFO if verbose else logging.WARNING
    handler = RichHandler(console=err, show_path=False, level=level)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Turn an :class:`AlphaforgeError` into one red line on stderr and exit status 2."""
    try:
        yield
    except AlphaforgeError as exc:
        fail(f"{type(exc).__name__}: {exc}")


def fail(message: str) -> None:
    """Print ``message`` as one red line on stderr and exit with status 2."""
    # Text, not markup: messages contain brackets such as "[low, high]"
    err.print(Text(message, style="red"), soft_wrap=True)
    raise typer.Exit(2) from None


def fmt(v: object) -> str:
    """A number with 4 decimals, or ``-`` for anything that is not one."""
    try:
        return f"{float(v):.4f}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"


@contextlib.contextmanager
def spinner(text: str) -> Iterator[None]:
    """A spinner on stderr while the block runs."""
    with err.status(text):
        yield


def progress_bars(bars: Progress) -> Progress_:
    """A library progress callback that draws one bar per stage on ``bars``."""
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int, desc: str) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(
            tasks[stage],
            completed=done,
            total=total,
            description=f"{stage}: {desc}" if desc else stage,
        )

    return update


def new_progress(*, transient: bool = True, auto_refresh: bool = True) -> Progress:
    """A rich ``Progress`` on stderr with description, bar, count and elapsed time."""
    cols = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    return Progress(*cols, console=err, transient=transient, auto_refresh=auto_refresh)


@contextlib.contextmanager
def bars() -> Iterator[Progress_]:
    """Progress bars on stderr for the duration of the block; yields the callback."""
    with new_progress() as progress:
        yield progress_bars(progress)
