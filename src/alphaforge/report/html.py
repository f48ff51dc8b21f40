"""Render a run directory into one self-contained HTML report.

The page holds everything inline: CSS from ``template.html`` and plots as base64 PNGs, so it opens
offline and can be mailed or archived as one file. Sections (each an element with a stable
``id``): ``summary``, ``metrics``, ``equity``, ``ic``, ``quantiles``, ``scatter`` always;
``significance`` and ``ensembles`` when ``metrics.json`` has their entries; then ``importance``,
``gates``, ``training`` and ``tuning`` only when the run wrote their files. Every
plot is an ``<img class="plot" data-plot="<name>">`` (per-model plots add ``data-model``). The
same run directory always renders to the same string.

The summary contrasts the best model with the best baseline and says plainly when a baseline
wins (:mod:`alphaforge.report.verdict`); it lists the backtest settings that apply to the chosen
strategy only, and the backtest's warnings. Tables fit their card at a 1300 px wide window:
forecast metrics and backtest results are two tables, and columns no model has a value for are
left out.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from html import escape
from importlib import resources
from pathlib import Path
from string import Template

import pandas as pd

from alphaforge import artifacts as files
from alphaforge.backtest import spec_settings
from alphaforge.report import analysis as an
from alphaforge.report import plots
from alphaforge.report.load import RunData, as_float, get_path, load_run
from alphaforge.report.tables import (
    DASH,
    backtest_columns,
    empty_metrics,
    facts_table,
    fmt,
    fmt_seconds,
    fmt_time,
    folds_table,
    model_columns,
    model_table,
    per_fold_table,
    rank_models,
    significance_table,
)
from alphaforge.report.verdict import (
    backtest_warnings,
    contrast,
    degenerate_models,
    warnings_html,
)
from alphaforge.utils.io import atomic_write_text

__all__ = ["render", "write_report"]

logger = logging.getLogger(__name__)

MAX_EQUITY_MODELS = 8
IC_MODELS = 3
IC_WINDOW = 20
SCATTER_POINTS = 5000
TOP_FEATURES = 20
MAX_OPEN_FOLDS = 12


@dataclass(frozen=True)
class Section:
    """One report section: anchor ``id``, heading and inner HTML."""

    id: str
    title: str
    body: str


@dataclass(frozen=True)
class _Ctx:
    """What every section builder needs: the run, models best first and their colours."""

    data: RunData
    ranked: list[str]
    rank_metric: str | None
    best: str | None
    colors: dict[str, str]
    degenerate: dict[str, str]  # model -> why its backtest means nothing (verdict module)

    @property
    def baselines(self) -> set[str]:
        return {m for m in self.ranked if self.data.is_baseline(m)}

    def leaders(self, n: int) -> list[str]:
        """The ``n`` best non-baseline models (baselines if there are none)."""
        pool = [m for m in self.ranked if m not in self.baselines] or self.ranked
        return pool[:n]


def render(run_dir: str | os.PathLike[str]) -> str:
    """Render the HTML report of a run directory.

    Args:
        run_dir: Directory written by :func:`alphaforge.run.run_experiment`; reads
            ``config.yaml``, ``metrics.json``, ``predictions.parquet`` (required) and, when
            present, ``folds.json``, ``backtest.parquet``, ``feature_importance.parquet``,
            ``gates.parquet``, ``history.parquet``, ``tuning.parquet`` and ``run.log``.

    Returns:
        One self-contained HTML document (no network resources), identical for identical inputs.

    Raises:
        DataError: A required file is missing, or a file cannot be read or lacks its columns.
    """
    data = load_run(run_dir)
    ranked, rank_metric = rank_models(data)
    best = next((m for m in ranked if not data.is_baseline(m)), ranked[0] if ranked else None)
    ctx = _Ctx(data, ranked, rank_metric, best, plots.model_colors(ranked), degenerate_models(data))
    builders = (
        _summary,
        _metrics,
        _significance,
        _ensembles,
        _equity,
        _ic,
        _quantiles,
        _scatter,
        _importance,
        _gates,
        _training,
        _tuning,
    )
    sections = [s for b in builders if (s := b(ctx)) is not None]
    nav = "".join(f'<a href="#{s.id}">{escape(s.title)}</a>' for s in sections)
    body = "\n".join(
        f'<section id="{s.id}"><h2>{escape(s.title)}</h2>\n{s.body}\n</section>' for s in sections
    )
    name = str(data.config.get("name") or data.run_dir.name)
    template = Template(
        resources.files("alphaforge.report").joinpath("template.html").read_text(encoding="utf-8")
    )
    return template.substitute(
        title=escape(f"alphaforge report: {name}"),
        name=escape(name),
        subtitle=_subtitle(ctx),
        nav=nav,
        body=body,
    )


def write_report(
    run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
) -> Path:
    """Render the report and write it atomically.

    Args:
        run_dir: Run directory (see :func:`render`).
        out: Destination; default ``<run_dir>/report.html``.

    Returns:
        Path of the written file.

    Raises:
        DataError: As for :func:`render`; nothing is written then.
    """
    text = render(run_dir)
    path = Path(out) if out is not None else Path(run_dir) / files.REPORT
    atomic_write_text(path, text)
    logger.info("report: wrote %s (%.0f KiB)", path, len(text.encode("utf-8")) / 1024)
    return path


# ----------------------------------------------------------------------------- helpers


def _img(uri: str, name: str, alt: str, model: str | None = None, narrow: bool = False) -> str:
    extra = f' data-model="{escape(model)}"' if model is not None else ""
    cls = "plot narrow" if narrow else "plot"
    return (
        f'<figure><img class="{cls}" data-plot="{name}"{extra} alt="{escape(alt)}" '
        f'src="{uri}"></figure>'
    )


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def _absent(filename: str) -> str:
    return _note(f"<code>{escape(filename)}</code> not present in this run.")


def _subtitle(ctx: _Ctx) -> str:
    cfg = ctx.data.config
    parts = [
        f"data <code>{escape(str(get_path(cfg, 'data', 'source') or DASH))}</code>",
        f"{len(ctx.ranked)} models",
        f"{ctx.data.metrics.get('n_folds', DASH)} folds",
    ]
    if ctx.best:
        parts.append(f"plots show <b>{escape(ctx.best)}</b>")
    return " &middot; ".join(parts)


def _label_text(data: RunData) -> tuple[str, str]:
    label = data.metrics.get("label") or data.config.get("label") or {}
    kind = str(get_path(label, "kind") or DASH) if isinstance(label, dict) else str(label)
    horizon = get_path(label, "horizon") if isinstance(label, dict) else None
    if horizon is None:
        return kind, DASH
    return kind, fmt(horizon, "int") + (" bar" if as_float(horizon) == 1 else " bars")


# ----------------------------------------------------------------------------- sections


def _backtest_text(data: RunData) -> str:
    """The backtest settings that apply to the run's strategy, as ``key=value`` pairs."""
    spec = data.metrics.get("backtest_spec")
    if not isinstance(spec, dict) or not spec:
        return DASH
    return ", ".join(f"{escape(str(k))}={escape(str(v))}" for k, v in spec_settings(spec).items())


def _summary(ctx: _Ctx) -> Section:
    data, cfg = ctx.data, ctx.data.config
    kind, horizon = _label_text(data)
    folds = data.folds or []
    starts = [get_path(f, "test", "start") for f in folds if get_path(f, "test", "n_bars")]
    ends = [get_path(f, "test", "end") for f in folds if get_path(f, "test", "n_bars")]
    period = f"{fmt_time(starts[0])} \u2192 {fmt_time(ends[-1])}" if starts else DASH
    n_base = len(ctx.baselines)
    leaders, verdict = contrast(data, ctx.ranked, ctx.rank_metric)
    facts = [
        ("Run", escape(str(cfg.get("name") or data.run_dir.name))),
        ("Data source", f"<code>{escape(str(get_path(cfg, 'data', 'source') or DASH))}</code>"),
        (
            "Label",
            f"{escape(kind)} ({escape(str(data.metrics.get('label_kind', DASH)))}), "
            f"horizon {horizon}",
        ),
        ("Seed", escape(str(cfg.get("seed", DASH)))),
        ("Models", f"{len(ctx.ranked) - n_base} + {n_base} baselines"),
        (
            "Folds",
            f"{escape(str(data.metrics.get('n_folds', len(folds) or DASH)))}; test bars {period}",
        ),
        ("Backtest", _backtest_text(data)),
        *leaders,
        ("Elapsed", fmt_seconds(data.metrics.get("elapsed_s"))),
    ]
    body = [verdict, warnings_html(data, ctx.ranked, "backtest-warnings")]
    body = [b for b in body if b] + [facts_table(facts)]
    if not folds:
        body.append("<h3>Walk-forward folds</h3>" + _absent(files.FOLDS))
    elif len(folds) <= MAX_OPEN_FOLDS:
        body.append("<h3>Walk-forward folds</h3>" + folds_table(folds))
    else:  # a long table would push the metrics far down: folded away
        body.append(
            f"<details><summary>Walk-forward folds ({len(folds)})</summary>"
            f"{folds_table(folds)}</details>"
        )
    body.append(f'<h3>Configuration</h3><pre id="config">{escape(data.config_text)}</pre>')
    if data.log_tail:
        body.append(
            f"<details><summary>Last lines of <code>run.log</code></summary>"
            f'<pre id="run-log">{escape(data.log_tail)}</pre></details>'
        )
    return Section("summary", "Run summary", "\n".join(body))


def _metrics(ctx: _Ctx) -> Section:
    data = ctx.data
    body = [
        '<p class="intro">Out-of-sample metrics over all folds; \u2191 higher / \u2193 lower '
        'is better, the best value of each column is <span class="best">highlighted</span> '
        "(none when every model ties)." + _left_out(empty_metrics(data, "test")) + "</p>"
    ]
    test_cols = model_columns(data, "test")
    body.append(
        "<h3>Test</h3>"
        + (
            model_table(data, ctx.ranked, test_cols, "metrics-test", ctx.best)
            if test_cols
            else _note("No test metrics in <code>metrics.json</code>.")
        )
    )
    bt_cols = backtest_columns(data)
    if bt_cols:
        body.append(
            "<h3>Backtest (test split, net of costs)</h3>"
            '<p class="intro">The portfolio each model\'s test predictions trade under '
            f"<code>{_backtest_text(data)}</code>; Sharpe lag+1: the same book traded one bar "
            "later. A book that never held a position is tagged and never best.</p>"
            + warnings_html(data, ctx.ranked)
            + model_table(data, ctx.ranked, bt_cols, "metrics-backtest", ctx.best, ctx.degenerate)
        )
    valid_cols = model_columns(data, "valid")
    if valid_cols:
        body.append(
            "<h3>Validation</h3>"
            + model_table(data, ctx.ranked, valid_cols, "metrics-valid", ctx.best)
        )
    if ctx.rank_metric:
        table = per_fold_table(data, ctx.ranked, ctx.rank_metric)
        if table:
            body.append(f"<h3>Test {escape(ctx.rank_metric)} per fold</h3>{table}")
    return Section("metrics", "Metrics", "\n".join(body))


def _left_out(names: list[str]) -> str:
    """Sentence naming the metric columns left out because no model has a value for them."""
    if not names:
        return ""
    return (
        f" Left out, no model has a value: {escape(', '.join(names))} (e.g. a top-10 hit rate "
        "or a quintile spread needs that many symbols per bar)."
    )


def _significance(ctx: _Ctx) -> Section | None:
    table = significance_table(ctx.data, ctx.ranked)
    if not table:
        return None
    body = (
        '<p class="intro">Is the test Rank IC different from zero, and does the Sharpe ratio '
        "survive the number of configurations tried? The per-date Rank IC of "
        "overlapping labels is autocorrelated, so its t-statistic is Newey-West's with a lag "
        "of at least the label horizon, judged against a fixed-b critical value (hover the t "
        "for it), and its 95% interval comes from a studentized circular block bootstrap. "
        "<b>Significant</b>: |t| above its critical value and the interval excluding 0. "
        "DSR (Bailey &amp; López de Prado 2014): the probability that the true Sharpe "
        "ratio beats the best one the counted trials would reach by luck; 95% or more "
        "survives the selection.</p>"
    )
    return Section("significance", "Significance", body + table)


def _ensembles(ctx: _Ctx) -> Section | None:
    entries = {
        m: e
        for m, e in ctx.data.model_entries.items()
        if isinstance(e, dict) and isinstance(e.get("ensemble"), dict)
    }
    if not entries:
        return None
    rows = []
    for name, e in entries.items():
        info, vs = e["ensemble"], e.get("vs_best_member") or {}
        cells = []
        for metric in ("rank_ic", "mae"):
            d = vs.get(metric)
            if not isinstance(d, dict):
                cells.append(f"<td>{fmt(None)}</td><td>{fmt(None)}</td><td>{fmt(None)}</td>")
                continue
            css = "best" if d.get("better") else ""
            cells.append(
                f'<td>{fmt(d.get("ensemble"))}</td><td class="text">'
                f'{escape(str(d.get("best_member")))} {fmt(d.get("best"))}</td><td class="{css}">'
                f"{as_float(d.get('diff')):+.4f}</td>"
            )
        weights = e.get("fusion_weights")
        wtext = ", ".join(
            f"{escape(str(k))} {as_float(v):.3f}"
            for k, v in (weights or {}).get("mean", {}).items()
        )
        members = ", ".join(escape(str(m)) for m in info.get("members", []))
        rows.append(
            f"<tr><td>{escape(name)}</td><td>{escape(str(info.get('kind')))}</td>"
            f'<td class="text">{members}</td>{"".join(cells)}'
            f'<td class="text">{wtext or fmt(None)}</td></tr>'
        )
    head = (
        "<tr><th>ensemble</th><th>kind</th><th>members</th><th>rank_ic</th>"
        "<th>best member</th><th>diff</th><th>mae</th><th>best member</th><th>diff</th>"
        "<th>fusion weights (mean over folds)</th></tr>"
    )
    body = (
        '<p class="intro">Each ensemble against its best member on the test bars that all '
        "of them predicted; learned ensembles were fitted on out-of-fold predictions only."
        f'</p><div class="table-wrap"><table id="ensembles-table">{head}{"".join(rows)}'
        "</table></div>"
    )
    return Section("ensembles", "Ensembles", body)


def _equity(ctx: _Ctx) -> Section:
    bt = ctx.data.backtest
    if bt is None:
        return Section("equity", "Equity curves", _absent(files.BACKTEST))
    present = set(bt["model"])
    models = [m for m in ctx.ranked if m in present][:MAX_EQUITY_MODELS]
    curves, dds = {}, {}
    for m in models:
        rows = an.backtest_returns(bt, m, "base")
        if rows.empty:
            continue
        eq = pd.DataFrame(
            {c: an.equity_curve(pd.to_numeric(rows[c], errors="coerce")) for c in ("gross", "net")}
        )
        curves[m], dds[m] = eq, an.drawdown(eq["net"])
    if not curves:
        return Section(
            "equity",
            "Equity curves",
            _note("No base-variant rows in <code>backtest.parquet</code>."),
        )
    warned = (
        ' <a href="#backtest-warnings">Backtest warnings</a> apply: see the run summary.'
        if backtest_warnings(ctx.data, models)
        else ""
    )
    body = [
        '<p class="intro">Compounded equity of each model\'s test-split portfolio (baselines '
        f"dashed), before and after trading costs, and its drawdown after costs.{warned}</p>",
        _img(
            plots.equity_plot(curves, ctx.baselines, ctx.colors),
            "equity",
            "Equity curves of each model, gross and net of costs",
        ),
        _img(
            plots.drawdown_plot(dds, ctx.baselines, ctx.colors),
            "drawdown",
            "Drawdown after costs of each model",
        ),
    ]
    return Section("equity", "Equity curves", "\n".join(body))


def _ic(ctx: _Ctx) -> Section:
    series = {}
    for m in ctx.leaders(IC_MODELS):
        per = an.ic_over_time(an.split_predictions(ctx.data.predictions, m, "test"))
        if per is not None:
            for col in ("ic", "rank_ic"):
                per[f"{col}_roll"] = an.rolling_mean(per[col], IC_WINDOW)
            series[m] = per
    if not series:
        return Section(
            "ic",
            "IC over time",
            _note(
                "No cross-sectional IC: the test predictions have fewer than two symbols per bar."
            ),
        )
    body = [
        f'<p class="intro">Per-bar cross-sectional Pearson (IC) and Spearman (rank IC) '
        f"correlation of predictions with realised labels on the test split, with a "
        f"{IC_WINDOW}-bar trailing mean, for the {len(series)} best models.</p>",
        _img(
            plots.ic_plot(series, ctx.colors, IC_WINDOW),
            "ic_over_time",
            "IC and rank IC over time for " + ", ".join(series),
        ),
    ]
    return Section("ic", "IC over time", "\n".join(body))


def _quantiles(ctx: _Ctx) -> Section:
    title = "Returns by prediction quantile"
    if ctx.best is None:
        return Section("quantiles", title, _note("No model in this run."))
    rows = an.split_predictions(ctx.data.predictions, ctx.best, "test")
    table = an.quantile_returns(rows)
    if table is None:
        return Section(
            "quantiles", title, _note("Not enough symbols per bar to form prediction quantiles.")
        )
    units = (
        "cumulative mean realised volatility"
        if ctx.data.metrics.get("label_kind") == "volatility"
        else "cumulative mean label (sum)"
    )
    q = table.shape[1]
    spread = an.spread_label(q)
    fewer = (
        f" The test bars hold too few symbols for {an.METRIC_QUANTILES} groups, so this chart "
        f"uses {an.quantile_name(q)}s: its {spread} is not the metrics' "
        f"{an.spread_label(an.METRIC_QUANTILES)} ({an.quantile_name(an.METRIC_QUANTILES)}s)."
        if q != an.METRIC_QUANTILES
        else ""
    )
    body = [
        f'<p class="intro">At each test bar the symbols are sorted by '
        f"<b>{escape(ctx.best)}</b>'s prediction into {q} equal groups "
        f"({an.quantile_name(q)}s, Q1 lowest); lines cumulate each group's mean realised label, "
        f"the dashed line the top-minus-bottom spread {spread}. A good ranker fans out in "
        f"order.{fewer}</p>",
        _img(
            plots.quantile_plot(table, ctx.best, units),
            "quantile_returns",
            f"Cumulative label by prediction quantile for {ctx.best}",
        ),
    ]
    return Section("quantiles", title, "\n".join(body))


def _scatter(ctx: _Ctx) -> Section:
    title = "Predicted vs realised"
    if ctx.best is None:
        return Section("scatter", title, _note("No model in this run."))
    rows = an.split_predictions(ctx.data.predictions, ctx.best, "test")
    x, y = an.scatter_sample(rows, SCATTER_POINTS, seed=0)
    if len(x) < 2:
        return Section("scatter", title, _note("Fewer than two finite test predictions."))
    n_total = int((rows["y_true"].notna() & rows["y_pred"].notna()).sum())
    return Section(
        "scatter",
        title,
        _img(
            plots.scatter_plot(x, y, ctx.best, n_total),
            "scatter",
            f"Predicted vs realised test labels for {ctx.best}",
            narrow=True,
        ),
    )


def _per_model_bars(
    ctx: _Ctx, frame: pd.DataFrame, value: str, plot: str, xlabel: str, what: str
) -> str:
    present = set(frame["model"].astype(str))
    models = [m for m in ctx.ranked if m in present] + sorted(present - set(ctx.ranked))
    figs = []
    for m in models:
        stats = an.mean_by_feature(frame[frame["model"].astype(str) == m], value, TOP_FEATURES)
        if stats.empty:
            continue
        uri = plots.bar_plot(
            stats, f"{m}: top {len(stats)} {what}", xlabel, ctx.colors.get(m, plots.PALETTE[0])
        )
        figs.append(_img(uri, plot, f"Top {what} of {m}", model=m))
    return f'<div class="grid">{"".join(figs)}</div>' if figs else _note(f"No {what} values.")


def _importance(ctx: _Ctx) -> Section | None:
    if ctx.data.importance is None:
        return None
    body = (
        '<p class="intro">Mean importance over folds (error bars: std over folds) of the '
        f"{TOP_FEATURES} most important features of each tree model.</p>"
        + _per_model_bars(
            ctx,
            ctx.data.importance,
            "importance",
            "feature_importance",
            "mean importance over folds",
            "feature importances",
        )
    )
    return Section("importance", "Feature importances", body)


def _gates(ctx: _Ctx) -> Section | None:
    if ctx.data.gates is None:
        return None
    body = (
        '<p class="intro">Mean learned feature gate over folds (error bars: std over folds), '
        f"{TOP_FEATURES} largest.</p>"
        + _per_model_bars(
            ctx, ctx.data.gates, "gate", "gates", "mean gate over folds", "feature gates"
        )
    )
    return Section("gates", "Feature gates", body)


def _training(ctx: _Ctx) -> Section | None:
    hist = ctx.data.history
    if hist is None:
        return None
    present = set(hist["model"].astype(str))
    models = [m for m in ctx.ranked if m in present] + sorted(present - set(ctx.ranked))
    figs = [
        _img(
            plots.history_plot(hist[hist["model"].astype(str) == m], m),
            "training",
            f"Training and validation loss per epoch of {m}",
            model=m,
        )
        for m in models
    ]
    body = f'<div class="grid">{"".join(figs)}</div>' if figs else _note("No epochs recorded.")
    return Section("training", "Training curves", body)


def _tuning(ctx: _Ctx) -> Section | None:
    tun = ctx.data.tuning
    if tun is None:
        return None
    figs = []
    for study, g in tun.groupby(tun["study"].astype(str), sort=True):
        direction = str(g["direction"].iloc[0]).lower() if "direction" in g else "maximize"
        figs.append(
            _img(
                plots.tuning_plot(g, str(study), direction != "minimize"),
                "tuning",
                f"Objective per trial of study {study}",
                model=str(study),
            )
        )
    body = f'<div class="grid">{"".join(figs)}</div>' if figs else _note("No trials recorded.")
    return Section("tuning", "Tuning history", body)
