"""``alphaforge run|report|backtest|models``: experiments, their reports and re-backtests."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table
from rich.text import Text

from alphaforge.cli.ui import bars, fmt, guard, out, spinner
from alphaforge.registry import list_models
from alphaforge.report import write_report
from alphaforge.run import RunResult, rebacktest, run_experiment

_SHORT = {"direction_accuracy": "dir_acc"}


def models_cmd() -> None:
    """List registered models: name, family, extra needed, capabilities."""
    table = Table("name", "family", "extra", "capabilities")
    for row in list_models():
        caps = row.get("capabilities") or {}
        flags = ", ".join(k for k, v in caps.items() if v is True)
        table.add_row(row["name"], row["family"], row.get("extra") or "-", flags)
    out.print(table)


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
) -> None:
    """Run a walk-forward experiment; print the test metrics table and write the run directory."""
    with guard(), bars() as progress:
        result = run_experiment(
            config, data=data, out=out_dir, overwrite=overwrite, resume=resume, progress=progress
        )
    _print_metrics(result)
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
    table = Table(
        "model",
        "Sharpe net",
        "ann. return net",
        "max DD net",
        "turnover",
        f"Sharpe (delay {delay + 1})",
        title=f"backtest: {strategy}, {costs_bps:g} bp",
    )
    for name, s in summaries.items():
        net, lag = s["base"]["net"], s["lagged"]["net"]
        table.add_row(
            name,
            fmt(net["sharpe"]),
            fmt(net["ann_return"]),
            fmt(net["max_drawdown"]),
            fmt(net["avg_turnover"]),
            fmt(lag["sharpe"]),
        )
    out.print(table)


def _print_metrics(result: RunResult) -> None:
    table_df = result.table("test")
    cols = [
        c
        for c in ("rank_ic", "rank_icir", "ic", "icir", "direction_accuracy", "rmse", "qlike")
        if c in table_df.columns and table_df[c].notna().any()
    ]
    models = result.metrics["models"]
    bt = {m: v.get("backtest") for m, v in models.items()}
    sig = {m: v.get("significance") or {} for m, v in models.items()}
    extra = ["sharpe", "sharpe_lag1"] if any(bt.values()) else []
    # Rank IC significance sits right after the metric it tests
    at = cols.index("rank_ic") + 1 if "rank_ic" in cols else len(cols)
    sig_heads = ["t", "sig"] if any(sig.values()) else []
    heads = [_SHORT.get(c, c) for c in cols]
    table = Table(
        "model",
        *heads[:at],
        *sig_heads,
        *heads[at:],
        *extra,
        title="out-of-sample (test) metrics; * = baseline;"
        " sharpe: net of costs, lag1: one bar later"
        + ("; t: Rank IC Newey-West t, sig *: significant at 5%" if sig_heads else ""),
    )
    baselines = {m for m, v in models.items() if v["baseline"]}
    for name, row in table_df.iterrows():
        label = f"{name}*" if name in baselines else str(name)
        b = bt.get(name) or {}
        sharpe = [fmt(b["base"]["net"]["sharpe"]), fmt(b["lagged"]["net"]["sharpe"])] if b else []
        s = sig.get(name, {})
        marks = [_tstat(s.get("rank_ic_t")), "*" if s.get("significant") else ""]
        cells = [fmt(row[c]) for c in cols]
        table.add_row(
            label,
            *cells[:at],
            *(marks if sig_heads else []),
            *cells[at:],
            *(sharpe if extra else []),
        )
    out.print(table)
    _print_ensembles(models)


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
    metrics = [c for c in metrics if c is not None]
    table = Table(
        "ensemble",
        "kind",
        *(h for c in metrics for h in (_SHORT.get(c, c), "best member", "diff")),
        title="ensembles vs their best member on the same test bars",
    )
    for name, v in ens.items():
        vs = v.get("vs_best_member", {})
        cells: list[Any] = []
        for c in metrics:
            d = vs.get(c)
            if d is None:
                cells += ["-", "-", "-"]
                continue
            style = "green" if d["better"] else "red"
            cells += [
                fmt(d["ensemble"]),
                f"{d['best_member']} {fmt(d['best'])}",
                Text(f"{d['diff']:+.4f}", style=style),
            ]
        table.add_row(name, v["ensemble"]["kind"], *cells)
    out.print(table)
    for name, v in ens.items():
        fw = v.get("fusion_weights")
        if fw:
            weights = ", ".join(f"{k} {w:.3f}" for k, w in fw["mean"].items())
            out.print(
                f"{name}: fusion weights (mean over folds) {weights}; intercept "
                f"{fw['intercept']:.3g}"
            )
