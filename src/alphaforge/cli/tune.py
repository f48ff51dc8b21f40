"""``alphaforge tune``: Optuna search per (symbol, model) with live progress; ``tune report``.

Every option is a field of :class:`~alphaforge.tuning.TuneConfig`: its default and help text
come from ``TuneConfig.model_fields``, and its value reaches :func:`~alphaforge.tuning.tune`
unchanged (``--min-improvement`` in percent, as in YAML and Python). With ``--config FILE`` the
file's options apply, and only the options given on the command line (or through TRIALS,
WORKERS, MODEL) override them.

``tune`` is a group: ``tune report`` is its sub-command, and any other bare word continues
``--symbols`` (``--symbols AAPL MSFT``), with options before or after it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Group
from rich.live import Live
from rich.progress import Progress
from rich.text import Text
from typer.core import TyperGroup

from alphaforge.cli.ui import (
    Progress_,
    StageProgress,
    add_columns,
    did_you_mean,
    err,
    fail,
    guard,
    new_progress,
    new_table,
    number_cells,
    out,
    print_table,
    progress,
)
from alphaforge.errors import ConfigError
from alphaforge.registry import MODELS
from alphaforge.tuning import (
    StudyStatus,
    TuneConfig,
    TuneSummary,
    load_tune_config,
    make_tune_config,
    tune,
    tune_history,
)

_FIELDS = TuneConfig.model_fields


def _default(name: str) -> Any:
    """The :class:`TuneConfig` default of option ``name``."""
    return _FIELDS[name].get_default(call_default_factory=True)


def _help(name: str) -> str:
    """The :class:`TuneConfig` description of option ``name``."""
    return _FIELDS[name].description or ""


class _TuneGroup(TyperGroup):
    """``tune [OPTIONS] [SYMBOLS]...`` runs a search; ``tune report`` is a sub-command.

    A first word that names a sub-command runs it; otherwise the words are symbols and the
    options may come before or after them (``--symbols AAPL MSFT --trials 5``).
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or args[0] in self.commands:
            return super().parse_args(ctx, args)
        ctx.allow_interspersed_args = True
        return super(TyperGroup, self).parse_args(ctx, args)  # a plain command's parsing


app = typer.Typer(
    cls=_TuneGroup,
    no_args_is_help=True,
    add_completion=False,
    subcommand_metavar="[report [--root DIR]]",
)


class _TuneView:
    """What ``tune`` shows while it runs: a table of every study above the progress bars on a
    terminal, progress records elsewhere.

    With one worker the library reports each trial as it finishes. With several, the workers
    are other processes: the trial count is read from the storage by the library's ``monitor``
    (complete, pruned and failed trials added since its first reading).
    """

    def __init__(
        self, cfg: TuneConfig, bars: Progress | None, report: Progress_ | None = None
    ) -> None:
        self.cfg, self.bars = cfg, bars
        self.progress = report or StageProgress(bars)
        self.rows: list[StudyStatus] = []
        self.first: dict[str, int] | None = None  # finished trials per study before this run
        self.last: dict[str, int] = {}

    def monitor(self, status: list[StudyStatus]) -> None:
        """The library's ``monitor``: keep the rows; count trials of other workers."""
        self.rows[:] = status
        if self.cfg.workers == 1:
            return
        finished = {r.study: r.complete + r.pruned + r.failed for r in status}
        if self.first is None:
            self.first = self.last = finished
        moved = [s for s, n in finished.items() if n > self.last.get(s, 0)]
        self.last = finished
        if moved:
            total = self.cfg.trials * len(status)
            done = min(total, sum(n - self.first.get(s, 0) for s, n in finished.items()))
            self.progress("trials", done, total, ", ".join(moved))

    def render(self) -> Group:
        """The study table above the bars."""
        table = new_table("tuning", f"best, last: {self.cfg.metric} on the validation bars")
        heads = ["study", "complete", "pruned", "failed", "running", "best", "last"]
        add_columns(table, heads, numbers=heads[1:])
        n = len(self.rows)
        scores = number_cells([r.best for r in self.rows] + [r.last for r in self.rows])
        for i, r in enumerate(self.rows):
            counts = (r.complete, r.pruned, r.failed, r.running)
            table.add_row(r.study, *map(str, counts), scores[i], scores[n + i])
        return Group(table, self.bars) if self.bars is not None else Group(table)


@contextlib.contextmanager
def _tune_view(cfg: TuneConfig) -> Iterator[_TuneView]:
    """A live study table and bars on a terminal; progress records on stderr elsewhere."""
    if not err.is_terminal:
        with progress("tuning") as report:
            yield _TuneView(cfg, None, report)
        return
    view = _TuneView(cfg, new_progress(transient=False, auto_refresh=False))
    with Live(console=err, transient=True, refresh_per_second=4, get_renderable=view.render):
        yield view


def _check_models(model: str | list[str]) -> None:
    """A model name that is not registered names the closest one, before any data is read."""
    choices = ["both", "all", *MODELS]
    for name in [model] if isinstance(model, str) else model:
        if name not in choices:
            raise ConfigError(
                f"--model: unknown model {name!r}{did_you_mean(name, choices) or ';'} valid: "
                f"'both', 'all', {', '.join(sorted(MODELS))}"
            )


@app.callback(invoke_without_command=True)
def tune_cmd(
    ctx: typer.Context,
    data: Annotated[Optional[str], typer.Option(help=_help("data"))] = _default("data"),
    model: Annotated[str, typer.Option(envvar="MODEL", help=_help("model"))] = _default("model"),
    symbols: Annotated[
        Optional[list[str]], typer.Option(help=_help("symbols") + "; repeat or space-separate")
    ] = _default("symbols"),
    trials: Annotated[int, typer.Option(envvar="TRIALS", help=_help("trials"))] = _default(
        "trials"
    ),
    workers: Annotated[int, typer.Option(envvar="WORKERS", help=_help("workers"))] = _default(
        "workers"
    ),
    storage: Annotated[Optional[str], typer.Option(help=_help("storage"))] = _default("storage"),
    min_improvement: Annotated[float, typer.Option(help=_help("min_improvement"))] = _default(
        "min_improvement"
    ),
    force: Annotated[bool, typer.Option(help=_help("force"))] = _default("force"),
    timeout: Annotated[Optional[float], typer.Option(help=_help("timeout"))] = _default("timeout"),
    seed: Annotated[int, typer.Option(help=_help("seed"))] = _default("seed"),
    root: Annotated[Path, typer.Option(help=_help("root"))] = _default("root"),
    metric: Annotated[str, typer.Option(help=_help("metric"))] = _default("metric"),
    val: Annotated[int, typer.Option(help=_help("val"))] = _default("val"),
    test: Annotated[int, typer.Option(help=_help("test"))] = _default("test"),
    folds: Annotated[int, typer.Option(help=_help("folds"))] = _default("folds"),
    stop: Annotated[Optional[int], typer.Option(help=_help("stop"))] = _default("stop"),
    prune: Annotated[bool, typer.Option(help=_help("prune"))] = _default("prune"),
    label: Annotated[str, typer.Option(help=_help("label"))] = _default("label"),
    horizon: Annotated[int, typer.Option(help=_help("horizon"))] = _default("horizon"),
    config: Annotated[
        Optional[Path],
        typer.Option(
            help="YAML of tune options (configs/tune.yaml); command-line options override it"
        ),
    ] = None,
) -> None:
    """Tune every (symbol, model); write hyperparams/, results/ and logs/ under --root.

    Progress goes to stderr: live table and bars on a terminal, one line per trial elsewhere.
    `alphaforge tune report --root DIR` prints the history of past runs.
    """
    if ctx.invoked_subcommand is not None:
        return
    words = list(ctx.args)
    if words == ["report"] and not symbols:  # `tune --root DIR report`
        report_cmd(root)
        return
    for word in [] if symbols else words:  # a bare word is a symbol only after --symbols
        hint = did_you_mean(word, list(ctx.command.commands))  # type: ignore[attr-defined]
        if hint:
            fail(f"ConfigError: unknown command {word!r}{hint} (symbols go after --symbols)")
    # "--symbols AAPL MSFT" arrives as one option value plus extra args: accept both forms
    syms = [s for item in (symbols or []) + words for s in item.split()] or None
    values = {
        "data": data,
        "model": model,
        "symbols": syms,
        "trials": trials,
        "workers": workers,
        "storage": storage,
        "min_improvement": min_improvement,
        "force": force,
        "timeout": timeout,
        "seed": seed,
        "root": root,
        "val": val,
        "test": test,
        "metric": metric,
        "folds": folds,
        "stop": stop,
        "prune": prune,
        "label": label,
        "horizon": horizon,
    }
    given = {
        name: v for name, v in values.items() if _given(ctx, name) or (name == "symbols" and syms)
    }
    with guard():
        base = load_tune_config(config) if config is not None else None
        cfg = make_tune_config(base, source="alphaforge tune", **given)
        _check_models(cfg.model)
    if cfg.data is None:
        fail("ConfigError: --data is required (or `data:` in --config)")
    with guard(), _tune_view(cfg) as view:
        summary = tune(cfg, progress=view.progress, monitor=view.monitor)
    _print_summary(summary)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was given on the command line or through its environment
    variable (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _print_summary(summary: TuneSummary) -> None:
    """One row per study: trials, old and new validation score, test score, promotion."""
    rows = summary.results
    table = new_table(
        f"tune: {summary.direction} {summary.metric}",
        caption="old, new: validation score before and after; test: held-out, best params",
    )
    heads = ["symbol", "model", "trials (pruned)", "old", "new", "gain", "test", "promoted"]
    add_columns(table, heads, numbers=heads[2:7])
    scores = number_cells([r.old_score for r in rows] + [r.new_score for r in rows])
    tests = number_cells([r.test_score for r in rows])
    for i, r in enumerate(rows):
        table.add_row(
            r.symbol,
            r.model,
            f"{r.n_trials} ({r.n_pruned})",
            scores[i],
            scores[len(rows) + i],
            "-" if r.improvement is None else f"{r.improvement:+.2%}",
            tests[i],
            Text("yes", style="green") if r.promoted else Text(f"no: {r.reason}"),
        )
    print_table(table)
    out.print(f"{summary.n_promoted} of {len(rows)} promoted; summary {summary.summary_path}")


@app.command("report")
def report_cmd(
    root: Annotated[Path, typer.Option(help=_help("root"))] = _default("root"),
) -> None:
    """Print the history of past tune runs under --root: one row per study and run."""
    runs = tune_history(root)
    if not runs:
        out.print(f"no tune runs under {root}/results")
        return
    table = new_table(f"tune history ({len(runs)} runs)")
    heads = ["run", "symbol", "model", "metric", "old", "new", "test", "promoted"]
    add_columns(table, heads, numbers=["old", "new", "test"])
    for run in runs:
        results = run.get("results", [])
        cells = number_cells(
            [r.get(k) for k in ("old_score", "new_score", "test_score") for r in results]
        )
        n = len(results)
        for i, r in enumerate(results):
            table.add_row(
                run.get("timestamp", "?"),
                r["symbol"],
                r["model"],
                run.get("metric", "?"),
                cells[i],
                cells[n + i],
                cells[2 * n + i],
                "yes" if r.get("promoted") else f"no: {r.get('reason', '')}",
            )
    print_table(table)
