"""``alphaforge run|report|backtest|models``: experiments, their reports and re-backtests."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table
from rich.text import Text

from alphaforge.cli.ui import (
    add_columns,
    guard,
    new_table,
    number_cells,
    out,
    print_table,
    progress,
    spinner,
)
from alphaforge.registry import list_models
from alphaforge.report import write_report
from alphaforge.run import RunResult, rebacktest, run_experiment

_SHORT = {"direction_accuracy": "dir_acc"}
#: the metrics of the default table (it fits 80 columns) and of ``--wide``, in column order
_DEFAULT = ("rank_ic", "rank_icir", "ic", "qlike")
_WIDE = ("rank_ic", "rank_icir", "ic", "icir", "direction_accuracy", "mae", "rmse", "qlike")


def models_cmd() -> None:
    """List registered models: name, family, extra needed, capabilities."""
    table = new_table()
    add_columns(table, ["name", "family", "extra", "capabilities"])
    for row in list_models():
        caps = row.get("capabilities") or {}
        flags = ", ".join(k for k, v in caps.items() if v is True)
        extra = (row.get("extra") or "-") + ("" if row["available"] else " (not installed)")
        table.add_row(row["name"], row["family"], extra, flags)
    print_table(table)


def run_cmd(
    config: Annotated[Path, typer.Argument(help="experiment YAML")],
    data: Annotated[
        Optional[str], typer.Option(help="run on this panel instead (all its symbols)")
    ] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="run directory")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace --out if it exists")] = False,
    resume: Annotated[
        bool,
        typer.Option(
            help="continue an interrupted run (same --out) from its neural models' checkpoints"
        ),
    ] = False,
    wide: Annotated[
        bool, typer.Option(help="every metric column (the default table fits 80 columns)")
    ] = False,
) -> None:
    """Run a walk-forward experiment; print the test metrics table and write the run directory.

    Progress goes to stderr: live bars on a terminal, one line per model and fold elsewhere.
    """
    with guard(), progress(f"run {config}") as report:
        result = run_experiment(
            config, data=data, out=out_dir, overwrite=overwrite, resume=resume, progress=report
        )
    _print_metrics(result, wide=wide)
    out.print(f"run directory: [bold]{result.run_dir}[/bold]")


def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    out_file: Annotated[
        Optional[Path], typer.Option("--out", help="HTML file (default RUN_DIR/report.html)")
    ] = None,
) -> None:
    """Rebuild the self-contained HTML report of a run."""
    with guard(), spinner("rendering report"):
        path = write_report(run_dir, out_file)
    out.print(f"wrote {path}")


def backtest_cmd(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    strategy: Annotated[str, typer.Option(help="long_short | top_k | sign")] = "long_short",
    quantile: Annotated[
        Optional[float], typer.Option(help="long_short: share of symbols per leg")
    ] = None,
    k: Annotated[Optional[int], typer.Option(help="top_k: names held")] = None,
    n_drop: Annotated[
        Optional[int], typer.Option(help="top_k: most names replaced per rebalance")
    ] = None,
    costs_bps: Annotated[
        float, typer.Option(help="cost per side, basis points of traded notional")
    ] = 5.0,
    delay: Annotated[int, typer.Option(help="bars between signal and first bar held (>= 1)")] = 1,
    rebalance_every: Annotated[int, typer.Option(help="bars between rebalances")] = 1,
    save: Annotated[
        bool, typer.Option(help="write the result into the run directory and rebuild report.html")
    ] = False,
) -> None:
    """Re-run the backtest on a run's saved test predictions with other settings."""
    given = {"quantile": quantile, "k": k, "n_drop": n_drop}
    spec = {
        "strategy": strategy,
        "costs_bps": costs_bps,
        "delay": delay,
        "rebalance_every": rebalance_every,
        **{a: v for a, v in given.items() if v is not None},
    }
    with guard(), spinner("backtesting"):
        summaries = rebacktest(run_dir, spec, save=save)
    nets = {name: (s["base"]["net"], s["lagged"]["net"]) for name, s in summaries.items()}
    columns = {
        "model": list(nets),
        "sharpe": number_cells([net["sharpe"] for net, _ in nets.values()]),
        "ann_return": number_cells([net["ann_return"] for net, _ in nets.values()]),
        "max_dd": number_cells([net["max_drawdown"] for net, _ in nets.values()]),
        "turnover": number_cells([net["avg_turnover"] for net, _ in nets.values()]),
        f"sharpe_d{delay + 1}": number_cells([lag["sharpe"] for _, lag in nets.values()]),
    }
    table = new_table(
        f"backtest: {strategy}, {costs_bps:g} bp per side, net of costs",
        caption=f"turnover: mean per bar; sharpe_d{delay + 1}: traded with delay {delay + 1}",
    )
    add_columns(table, list(columns), numbers=list(columns)[1:])
    for row in zip(*columns.values(), strict=True):
        table.add_row(*row)
    print_table(table)


def _print_metrics(result: RunResult, *, wide: bool = False) -> None:
    print_table(metrics_table(result, wide=wide))
    _print_ensembles(result.metrics["models"])


def metrics_table(result: RunResult, *, wide: bool = False) -> Table:
    """The test metrics of every model: a few columns that fit 80, or all of them (``wide``).

    Numbers have 3 significant digits on each column's largest value; the Rank IC's Newey-West
    t and significance mark sit right after it; ``sharpe`` and ``lag1`` are the backtest's net
    Sharpe ratios with the signal as given and one bar later.
    """
    frame = result.table("test")
    models = result.metrics["models"]
    names = [str(m) for m in frame.index]
    metrics = [
        c for c in (_WIDE if wide else _DEFAULT) if c in frame.columns and frame[c].notna().any()
    ]
    sig = {m: models[m].get("significance") or {} for m in names}
    bt = {m: models[m].get("backtest") or {} for m in names}
    columns = {"model": [f"{m}*" if models[m]["baseline"] else m for m in names]}
    columns |= {_SHORT.get(c, c): number_cells(frame[c].tolist()) for c in metrics}
    legend = ["* baseline"]
    if any(sig.values()):
        at = metrics.index("rank_ic") + 2 if "rank_ic" in metrics else len(columns)
        marks = {
            "t": [_tstat(sig[m].get("rank_ic_t")) for m in names],
            "sig": ["*" if sig[m].get("significant") else "" for m in names],
        }
        items = list(columns.items())
        columns = dict(items[:at] + list(marks.items()) + items[at:])
        legend.append("t: Rank IC Newey-West t; sig *: significant at 5%")
    if any(bt.values()):
        lag = "sharpe_lag1" if wide else "lag1"
        columns["sharpe"] = number_cells([_net_sharpe(bt[m], "base") for m in names])
        columns[lag] = number_cells([_net_sharpe(bt[m], "lagged") for m in names])
        legend.append(f"sharpe: net of costs; {lag}: traded one bar later")
    table = new_table("out-of-sample (test) metrics", caption="; ".join(legend))
    add_columns(table, list(columns), numbers=[c for c in columns if c not in ("model", "sig")])
    for row in zip(*columns.values(), strict=True):
        table.add_row(*row)
    return table


def _net_sharpe(backtest: dict[str, Any], which: str) -> object:
    """The net Sharpe ratio of a model's backtest summary (``base`` or ``lagged``), or None."""
    return backtest[which]["net"]["sharpe"] if backtest else None


def _tstat(v: object) -> str:
    """A t-statistic with 2 decimals, or ``-`` for anything that is not a finite number."""
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"
    return f"{x:.2f}" if math.isfinite(x) else "-"


def _print_ensembles(models: dict[str, Any]) -> None:
    ens = {m: v for m, v in models.items() if v.get("ensemble")}
    if not ens:
        return
    # one ranking and one error metric keep the table readable; metrics.json has them all
    metrics = [
        next(
            (c for c in group if any(c in v.get("vs_best_member", {}) for v in ens.values())), None
        )
        for group in (("rank_ic", "ic"), ("mae", "rmse", "qlike"))
    ]
    table = new_table(
        "ensembles vs their best member on the same test bars",
        caption="diff: ensemble minus best member; green: the ensemble is better",
    )
    heads = ["ensemble", "kind", "metric", "value", "best member", "its value", "diff"]
    add_columns(table, heads, numbers=["value", "its value", "diff"])
    for c in (c for c in metrics if c is not None):
        rows = [(name, v, v.get("vs_best_member", {}).get(c)) for name, v in ens.items()]
        # ensemble and member values with the same decimals: they are compared
        both = number_cells([d[k] if d else None for k in ("ensemble", "best") for *_, d in rows])
        values, bests = both[: len(rows)], both[len(rows) :]
        diffs = number_cells([d["diff"] if d else None for *_, d in rows])
        for (name, v, d), value, best, diff in zip(rows, values, bests, diffs, strict=True):
            style = "" if d is None else "green" if d["better"] else "red"
            member = d["best_member"] if d else "-"
            sign = "+" if d and d["diff"] >= 0 else ""
            kind = v["ensemble"]["kind"]
            table.add_row(
                name, kind, _SHORT.get(c, c), value, member, best, Text(sign + diff, style)
            )
    print_table(table)
    for name, v in ens.items():
        fw = v.get("fusion_weights")
        if fw:
            weights = ", ".join(f"{k} {w:.3f}" for k, w in fw["mean"].items())
            out.print(
                f"{name}: fusion weights (mean over folds) {weights}; intercept "
                f"{fw['intercept']:.3g}"
            )
