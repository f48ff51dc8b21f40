"""What every ``alphaforge`` command shares: consoles, the error guard, tables and progress.

An :class:`~alphaforge.errors.AlphaforgeError` raised inside :func:`guard` prints one red line on
stderr and exits with status 2; anything else keeps its traceback (a bug, not a user error).

Progress has two faces, chosen by whether stderr is a terminal:

- on a terminal, live rich bars (one per stage: fold > model > epoch) whose elapsed times keep
  advancing; a stage's bar restarts with each item of the stage around it;
- anywhere else (a pipe, a batch log), plain one-line records on stderr, one per finished item::

      fold 1/4 model 2/5 lstm: done in 12.3s (elapsed 0:01:02, ETA ~0:03:10)
      fold 1/4 model 2/5 lstm epoch 3/20 valid loss 1.012: done in 0.8s (elapsed 0:00:51, ...)

  and for a step without stages a ``title: done in 12.3s`` line (and ``title ...`` when it
  starts, if it runs more than a few seconds).

Tables fit 80 columns (:func:`new_table`, :func:`number_cells`); plain lines are never wrapped or
cut, whatever the width (the consoles soft-wrap).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import typer
from rich import box
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from alphaforge.errors import AlphaforgeError

# piped output: wide enough for `--wide` tables; plain lines soft-wrap (never cut) at any width
PIPED_WIDTH = 200
out = Console(width=None if sys.stdout.isatty() else PIPED_WIDTH, soft_wrap=True)
err = Console(stderr=True, width=None if sys.stderr.isatty() else PIPED_WIDTH)

#: progress(stage, done, total, description), as the library's callbacks call it
Progress_ = Callable[[str, int, int, str], None]


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A plain log handler writing to whatever ``sys.stderr`` is when a record arrives."""

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass  # StreamHandler.__init__ sets it; the property always reads sys.stderr


def setup_logging(verbose: bool) -> None:
    """Send the library's log records to stderr: WARNING and up, or INFO with ``verbose``.

    On a terminal through rich; elsewhere as plain ``LEVEL logger: message`` lines.
    """
    # the handler's level decides what reaches the terminal; run.log gets INFO regardless
    level = logging.INFO if verbose else logging.WARNING
    handler: logging.Handler
    if err.is_terminal:
        handler = RichHandler(console=err, show_path=False, level=level)
        fmt_ = "%(message)s"
    else:
        handler = _Stderr()
        handler.setLevel(level)
        fmt_ = "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt_, handlers=[handler], force=True)


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


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` to ``word``, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# ----------------------------------------------------------------------------- numbers, tables
def _number(v: object) -> float | None:
    """``v`` as a finite float, or None."""
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def number_cells(values: Sequence[object], digits: int = 3) -> list[str]:
    """One column of numbers with the same decimals: ``digits`` significant on the largest.

    ``[0.0746, 0.1218, -0.0036]`` -> ``["0.075", "0.122", "-0.004"]``; ``[4.96, 1.23]`` ->
    ``["4.96", "1.23"]``. Anything that is not a finite number is ``-``.
    """
    xs = [_number(v) for v in values]
    big = max((abs(x) for x in xs if x is not None and x != 0), default=1.0)
    decimals = min(6, max(0, digits - 1 - math.floor(math.log10(big))))
    return ["-" if x is None else f"{x:.{decimals}f}" for x in xs]


def new_table(title: str | None = None, caption: str | None = None) -> Table:
    """A compact table (rule under the header, no side borders) for 80-column terminals."""
    return Table(
        title=title,
        caption=caption,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
        title_justify="left",
        caption_justify="left",
    )


def add_columns(table: Table, names: Sequence[str], numbers: Sequence[str] = ()) -> None:
    """Add ``names`` to ``table``: text columns fold long values onto the next line, number
    columns (the names in ``numbers``) are right-aligned and never wrapped."""
    for name in names:
        if name in numbers:
            table.add_column(name, justify="right", no_wrap=True, overflow="fold")
        else:
            table.add_column(name, overflow="fold")


def print_table(table: Table) -> None:
    """Print ``table`` on stdout (its title and caption wrap to the table's width)."""
    out.print(table, soft_wrap=False)


# ----------------------------------------------------------------------------- progress
def _clock(seconds: float) -> str:
    """``H:MM:SS``."""
    s = max(0, round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _took(seconds: float) -> str:
    """``12.3s`` under a minute, ``H:MM:SS`` above."""
    return f"{seconds:.1f}s" if seconds < 60 else _clock(seconds)


def record(line: str) -> None:
    """Print one plain progress record on stderr (never wrapped, no markup)."""
    err.print(Text(line), soft_wrap=True)


@dataclass
class _Stage:
    """One stage of the progress stack and its current item."""

    name: str
    total: int
    created: float  # when the stage first reported in its parent's current item
    started: float  # when its current item started
    done: int = 0
    desc: str = ""

    def label(self) -> str:
        """``fold 1/4`` or ``model 2/5 lstm``: the item in progress, for inner records."""
        return f"{self.name} {self.done + 1}/{self.total}" + (f" {self.desc}" if self.desc else "")


class StageProgress:
    """The library's ``progress(stage, done, total, desc)`` callback, as bars or records.

    Stages nest in the order they first report (``fold`` > ``model`` > ``epoch``); a call to
    one stage restarts every stage inside it. ``done`` counts finished items: a call that raises
    it finishes an item (``desc`` names it), one that leaves it starts the next item (``desc``
    names that). With ``bars`` each stage draws a bar; without, each finished item prints a
    :func:`record` with its time, the time since this object was made and an estimate of the
    time left (from the fraction done over the unfinished stages around it).

    Args:
        bars: Live rich bars on a terminal, or None for records.
        clock: Seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, bars: Progress | None = None, clock: Callable[[], float] = time.monotonic):
        self.bars, self.clock = bars, clock
        self.t0 = clock()
        self.stages: list[_Stage] = []
        self.tasks: dict[str, TaskID] = {}
        self.on_first_record: Callable[[], None] | None = None

    def __call__(self, stage: str, done: int, total: int, desc: str) -> None:
        now = self.clock()
        st = self._enter(stage, total, done, now)
        if done < st.done:  # a fresh round without a parent to say so
            st.done, st.started = 0, now
            self._restart(st)
        if done > st.done:
            if self.bars is None:
                if self.on_first_record is not None:
                    self.on_first_record()
                    self.on_first_record = None
                record(self._record(st, done, total, desc, now))
            st.started = now
        st.done, st.total, st.desc = done, total, desc
        if self.bars is not None:
            description = f"{stage}: {desc}" if desc else stage
            self.bars.update(
                self.tasks[stage], completed=done, total=total, description=description
            )

    def _enter(self, stage: str, total: int, done: int, now: float) -> _Stage:
        """The stage's state; inner stages end. A new stage starts with its parent's item, or
        now; a first stage whose first call already finishes items, when this object was made."""
        names = [s.name for s in self.stages]
        if stage in names:
            i = names.index(stage)
            for inner in self.stages[i + 1 :]:
                if self.bars is not None:
                    self.bars.update(self.tasks[inner.name], visible=False)
            del self.stages[i + 1 :]
            return self.stages[i]
        since = self.stages[-1].started if self.stages else now if done == 0 else self.t0
        st = _Stage(stage, total, created=since, started=since)
        self.stages.append(st)
        self._restart(st)
        return st

    def _restart(self, st: _Stage) -> None:
        """Reset the stage's bar: count and elapsed time start again."""
        if self.bars is None:
            return
        if st.name not in self.tasks:
            self.tasks[st.name] = self.bars.add_task(st.name, total=st.total)
        else:
            self.bars.reset(self.tasks[st.name], total=st.total, visible=True, description=st.name)

    def _record(self, st: _Stage, done: int, total: int, desc: str, now: float) -> str:
        """``fold 1/4 model 2/5 lstm: done in 12.3s (elapsed 0:01:02, ETA ~0:03:10)``."""
        outer = self.stages[: self.stages.index(st)]
        running = []  # the unfinished stages around this one, innermost last
        for s in outer:
            running = [] if s.done >= s.total else [*running, s]
        prefix = "".join(f"{s.label()} " for s in running)
        what = f"{st.name} {done}/{total}" + (f" {desc}" if desc else "")
        frac = done / total if total else 1.0
        for s in reversed(running):
            frac = (s.done + frac) / s.total
        times = f"elapsed {_clock(now - self.t0)}"
        top = running[0] if running else st
        if 0 < frac < 1:
            times += f", ETA ~{_clock((now - top.created) * (1 - frac) / frac)}"
        return f"{prefix}{what}: done in {_took(now - st.started)} ({times})"


class _Count(ProgressColumn):
    """``3/20``, or nothing while the total is unknown."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return Text(f"{int(task.completed)}/{int(task.total)}", style="progress.download")


def new_progress(*, transient: bool = True, auto_refresh: bool = True) -> Progress:
    """A rich ``Progress`` on stderr with description, bar, count and elapsed time."""
    cols = (TextColumn("{task.description}"), BarColumn(), _Count(), TimeElapsedColumn())
    return Progress(*cols, console=err, transient=transient, auto_refresh=auto_refresh)


#: seconds a step runs before its start line is printed (off a terminal): a step that fails
#: at once, on bad input, prints its one error line only
START_AFTER_S = 3.0


@contextlib.contextmanager
def progress(title: str | None = None) -> Iterator[Progress_]:
    """Progress of the block on stderr; yields the library callback (:class:`StageProgress`).

    On a terminal: live bars, with ``title`` and its elapsed time on a line of its own.
    Elsewhere: records, and a ``title: done in 12.3s`` line at the end; a ``title ...`` line
    first when the block runs ``START_AFTER_S`` seconds before its first record.
    """
    if err.is_terminal:
        with new_progress() as bars:
            if title:
                bars.add_task(title, total=None)
            yield StageProgress(bars)
        return
    t0 = time.monotonic()
    start = threading.Timer(START_AFTER_S, record, [f"{title} ..."])
    start.daemon = True
    if title:
        start.start()
    report = StageProgress()
    report.on_first_record = start.cancel  # records show it started
    try:
        yield report
    finally:
        start.cancel()
    if title:
        record(f"{title}: done in {_took(time.monotonic() - t0)}")


@contextlib.contextmanager
def spinner(text: str) -> Iterator[None]:
    """``text`` and its elapsed time on stderr while the block runs (start/done lines when
    stderr is not a terminal)."""
    with progress(text):
        yield
