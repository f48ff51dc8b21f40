"""``alphaforge tune``: Optuna search per (symbol, model) with a live table; ``tune report``.

Every option is a field of :class:`~alphaforge.tuning.TuneConfig`: its default and help text
come from ``TuneConfig.model_fields``, and its value reaches :func:`~alphaforge.tuning.tune`
unchanged (``--min-improvement`` in percent, as in YAML and Python). With ``--config FILE`` the
file's options apply, and only the options given on the command line (or through TRIALS,
WORKERS, MODEL) override them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from alphaforge.cli.ui import Progress_, err, fail, fmt, guard, new_progress, out, progress_bars
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


@contextlib.contextmanager
def _tune_live(metric: str) -> Iterator[tuple[Progress_, Callable[[list[StudyStatus]], None]]]:
    """A live table of every study (trial counts, best and last score) above the progress bars."""
    bars = new_progress(transient=False, auto_refresh=False)
    rows: list[StudyStatus] = []

    def render() -> Group:
        table = Table(
            "study",
            "complete",
            "pruned",
            "failed",
            "running",
            f"best {metric}",
            f"last {metric}",
            title="tuning",
        )
        for r in rows:
            table.add_row(
                r.study,
                str(r.complete),
                str(r.pruned),
                str(r.failed),
                str(r.running),
                fmt(r.best),
                fmt(r.last),
            )
        return Group(table, bars)

    def monitor(status: list[StudyStatus]) -> None:
        rows[:] = status

    with Live(console=err, transient=True, refresh_per_second=4, get_renderable=render):
        yield progress_bars(bars), monitor


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

    `alphaforge tune report --root DIR` prints the history of past runs instead.
    """
    if ctx.args[:1] == ["report"] and not symbols:
        _tune_report(root)
        return
    # "--symbols AAPL MSFT" arrives as one option value plus extra args: accept both forms
    syms = [s for item in (symbols or []) + list(ctx.args) for s in item.split()] or None
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
    if cfg.data is None:
        fail("ConfigError: --data is required (or `data:` in --config)")
    with guard(), _tune_live(cfg.metric) as (progress, monitor):
        summary = tune(cfg, progress=progress, monitor=monitor)
    _print_summary(summary)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was given on the command line or through its environment
    variable (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _print_summary(summary: TuneSummary) -> None:
    """One row per study: trials, old and new validation score, test score, promotion."""
    metric = summary.metric
    table = Table(
        "symbol",
        "model",
        "trials (pruned)",
        f"old {metric}",
        f"new {metric}",
        "improvement",
        "test",
        "promoted",
        title=f"tune: {summary.direction} {metric}",
    )
    for r in summary.results:
        imp = "-" if r.improvement is None else f"{r.improvement:+.2%}"
        table.add_row(
            r.symbol,
            r.model,
            f"{r.n_trials} ({r.n_pruned})",
            fmt(r.old_score),
            fmt(r.new_score),
            imp,
            fmt(r.test_score),
            Text("yes", style="green") if r.promoted else Text(f"no: {r.reason}"),
        )
    out.print(table)
    out.print(
        f"{summary.n_promoted} of {len(summary.results)} promoted; summary {summary.summary_path}"
    )


def _tune_report(root: Path) -> None:
    """The history of past runs under ``root``, one row per study and run."""
    runs = tune_history(root)
    if not runs:
        out.print(f"no tune runs under {root}/results")
        return
    table = Table(
        "run",
        "symbol",
        "model",
        "metric",
        "old",
        "new",
        "test",
        "promoted",
        title=f"tune history ({len(runs)} runs)",
    )
    for run in runs:
        for r in run.get("results", []):
            table.add_row(
                run.get("timestamp", "?"),
                r["symbol"],
                r["model"],
                run.get("metric", "?"),
                fmt(r.get("old_score")),
                fmt(r.get("new_score")),
                fmt(r.get("test_score")),
                "yes" if r.get("promoted") else f"no: {r.get('reason', '')}",
            )
    out.print(table)
