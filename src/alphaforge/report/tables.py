"""HTML tables and number formatting of the report: run facts, folds, metrics, per-fold scores.

Every value passes through :func:`fmt` (NaN/None -> "–") and every text through ``html.escape``.
The best value of each metric column is marked with ``class="best"``, using the metric's
direction from :data:`alphaforge.metrics.METRICS` (backtest columns: higher is better). No value
is marked when every model ties, and a backtest column skips the models whose book held no
position (their 0% drawdown or 0% return is no achievement). Metric columns without a value for
any model are left out, so the tables fit their card.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from html import escape

import pandas as pd

from alphaforge.metrics import METRICS
from alphaforge.report.analysis import METRIC_QUANTILES, spread_label
from alphaforge.report.load import RunData, as_float, get_path

DASH = "\u2013"  # shown for every missing or NaN value
PERCENT_METRICS = frozenset({"direction_accuracy", "top5_hit_rate", "top10_hit_rate"})
SHORT_NAMES = {
    "mae": "MAE",
    "rmse": "RMSE",
    "ts_rank_ic": "TS Rank IC",
    "pct_return_mae": "MAE (pp)",
    "direction_accuracy": "Dir. acc.",
    "ic": "IC",
    "rank_ic": "Rank IC",
    "icir": "ICIR",
    "rank_icir": "Rank ICIR",
    "top5_hit_rate": "Top-5 hit",
    "top10_hit_rate": "Top-10 hit",
    "quantile_spread": spread_label(METRIC_QUANTILES),
    "qlike": "QLIKE",
}
# model-ranking keys, in order of preference: (metric, higher is better)
RANK_KEYS = (("rank_ic", True), ("ic", True), ("qlike", False), ("rmse", False), ("mae", False))


@dataclass(frozen=True)
class Column:
    """One numeric column of a model table.

    Attributes:
        key: Identifier (metric name or ``bt_<key>``).
        label: Header text.
        title: Header tooltip.
        get: ``get(model) -> float`` (NaN when missing).
        fmt: ``fmt(value) -> str``.
        higher_better: True/False to highlight the best value; None for no highlight.
        needs_positions: A backtest value: models whose book held no position cannot be best.
    """

    key: str
    label: str
    title: str
    get: Callable[[str], float]
    fmt: Callable[[float], str]
    higher_better: bool | None
    needs_positions: bool = False


def fmt(value: object, kind: str = "num") -> str:
    """Format a number for a table cell; NaN, None and non-numbers become "–".

    Args:
        value: The number.
        kind: ``"num"`` (4 decimals, or 3 significant digits when tiny or huge), ``"pct"``
            (fraction shown as a percentage), ``"ratio"`` (2 decimals) or ``"int"``.

    Returns:
        The cell text.
    """
    v = as_float(value) + 0.0  # + 0.0: -0.0 prints as 0
    if not math.isfinite(v):
        return DASH
    if kind == "pct":
        return f"{v * 100:.1f}%"
    if kind == "ratio":
        return f"{v:.2f}"
    if kind == "int":
        return f"{v:,.0f}"
    if v == 0 or 1e-3 <= abs(v) < 1e4:
        return f"{v:.4f}"
    return f"{v:.3g}"


def fmt_metric(name: str) -> Callable[[float], str]:
    """Formatter of a metric's values (percentages for hit rates and accuracy)."""
    kind = "pct" if name in PERCENT_METRICS else "num"
    return lambda v: fmt(v, kind)


def fmt_time(value: object) -> str:
    """A timestamp as ``YYYY-MM-DD`` (midnight) or ``YYYY-MM-DD HH:MM``; "–" if missing."""
    if value is None or value == "":
        return DASH
    try:
        ts = pd.Timestamp(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return escape(str(value))
    if pd.isna(ts):
        return DASH
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.strftime("%Y-%m-%d %H:%M")


def fmt_seconds(value: object) -> str:
    """Elapsed seconds as ``"12.3 s"``, ``"4 min 05 s"`` or ``"1 h 02 min"``."""
    s = as_float(value)
    if not math.isfinite(s):
        return DASH
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def rank_models(data: RunData) -> tuple[list[str], str | None]:
    """Models best first: non-baselines by test score, then baselines, each group ranked.

    The score is the first of :data:`RANK_KEYS` that some model has a finite test value of;
    models without one keep their ``metrics.json`` order after those with one.

    Args:
        data: The run.

    Returns:
        ``(models, metric)``: ranked names and the metric used (None if no model had any).
    """
    names = data.models()
    chosen = next(
        (
            (metric, higher)
            for metric, higher in RANK_KEYS
            if any(math.isfinite(data.metric(m, "test", metric)) for m in names)
        ),
        None,
    )
    if chosen is None:
        return sorted(names, key=data.is_baseline), None  # stable: metrics.json order kept
    metric, higher = chosen

    def key(m: str) -> tuple[bool, bool, float]:
        v = data.metric(m, "test", metric)
        return data.is_baseline(m), not math.isfinite(v), -v if higher else v

    return sorted(names, key=key), metric  # sorted() is stable: ties keep metrics.json order


def metric_names(data: RunData, split: str) -> list[str]:
    """Metric names found in any model's ``split`` overall metrics, in METRICS order."""
    seen: dict[str, None] = {}
    for entry in data.model_entries.values():
        overall = get_path(entry, split, "overall")
        if isinstance(overall, dict):
            seen.update(dict.fromkeys(map(str, overall)))
    known = [n for n in METRICS if n in seen]
    return known + sorted(n for n in seen if n not in METRICS)


def model_columns(data: RunData, split: str) -> list[Column]:
    """Metric columns of a model table: those with a finite value for at least one model."""
    cols: list[Column] = []
    models = data.models()
    for name in metric_names(data, split):
        if not any(math.isfinite(data.metric(m, split, name)) for m in models):
            continue  # e.g. top-10 hit rate with fewer than 10 symbols: a column of dashes
        spec = METRICS.get(name)
        higher = None if spec is None else spec.direction == "maximize"
        arrow = "" if higher is None else ("\u00a0\u2191" if higher else "\u00a0\u2193")
        cols.append(
            Column(
                name,
                SHORT_NAMES.get(name, name) + arrow,
                spec.description if spec else name,
                lambda m, n=name: data.metric(m, split, n),
                fmt_metric(name),
                higher,
            )
        )
    return cols


def empty_metrics(data: RunData, split: str) -> list[str]:
    """Short names of the ``split`` metrics no model has a finite value of (left out)."""
    models = data.models()
    return [
        SHORT_NAMES.get(n, n)
        for n in metric_names(data, split)
        if not any(math.isfinite(data.metric(m, split, n)) for m in models)
    ]


# backtest table: key, header, tooltip, (variant, summary key), format, higher is better, and
# whether a book without positions is excluded from "best" (all but turnover and the lag test)
_BACKTEST_COLUMNS = (
    ("bt_sharpe", "Sharpe net\u00a0\u2191", "annualised Sharpe ratio after costs",
     ("base", "sharpe"), "ratio", True, True),
    ("bt_ann_return", "Ann. return net\u00a0\u2191", "annualised geometric return after costs",
     ("base", "ann_return"), "pct", True, True),
    ("bt_max_drawdown", "Max DD net\u00a0\u2191",
     "maximum drawdown after costs (closer to 0 is better)",
     ("base", "max_drawdown"), "pct", True, True),
    ("bt_hit_rate", "Hit rate\u00a0\u2191", "share of the bars holding a position that gained",
     ("base", "hit_rate"), "pct", True, True),
    ("bt_turnover", "Turnover / bar", "mean one-way traded notional per bar, capital fraction",
     ("base", "avg_turnover"), "ratio", None, False),
    ("bt_lag_sharpe", "Sharpe lag+1",
     "net Sharpe when trading one bar later (lag test: a collapse hints at look-ahead)",
     ("lagged", "sharpe"), "ratio", None, False),
)  # fmt: skip


def backtest_columns(data: RunData) -> list[Column]:
    """Columns of the test backtest table (net of costs), or [] when no model has a backtest."""
    if not any(isinstance(e.get("backtest"), dict) for e in data.model_entries.values()):
        return []
    return [
        Column(
            key,
            label,
            title,
            lambda m, v=variant, k=name: data.backtest_summary(m, v, "net", k),
            lambda x, kind=kind: fmt(x, kind),
            higher,
            needs,
        )
        for key, label, title, (variant, name), kind, higher, needs in _BACKTEST_COLUMNS
    ]


def model_table(
    data: RunData,
    models: Sequence[str],
    columns: Sequence[Column],
    table_id: str,
    best: str | None = None,
    flat: Collection[str] = (),
) -> str:
    """HTML table: one row per model, baselines tagged, best value per column marked.

    Args:
        data: The run.
        models: Row order.
        columns: From :func:`model_columns` or :func:`backtest_columns`.
        table_id: ``id`` of the table element.
        best: Model to tag as the report's "best" (the one the plots show), if any.
        flat: Models whose book held no position: never best in a ``needs_positions`` column,
            and tagged "no positions" in a table that has one.

    Returns:
        The ``<table>`` wrapped in a ``<div>`` that scrolls sideways should it ever overflow.
    """
    values = {c.key: [c.get(m) for m in models] for c in columns}
    winners: dict[str, float] = {}
    for c in columns:
        finite = [
            v
            for m, v in zip(models, values[c.key], strict=True)
            if math.isfinite(v) and not (c.needs_positions and m in flat)
        ]
        if c.higher_better is not None and len(set(finite)) > 1:  # all tied: nobody is best
            winners[c.key] = max(finite) if c.higher_better else min(finite)
    positions = any(c.needs_positions for c in columns)
    head = "".join(f'<th title="{escape(c.title)}">{escape(c.label)}</th>' for c in columns)
    rows = []
    for i, m in enumerate(models):
        tags = ""
        if data.is_baseline(m):
            tags += ' <span class="tag">baseline</span>'
        if m == best:
            tags += ' <span class="tag tag-best">plotted</span>'
        if positions and m in flat:
            tags += ' <span class="tag tag-warn">no positions</span>'
        cells = []
        for c in columns:
            v = values[c.key][i]
            win = c.key in winners and v == winners[c.key]
            mark = ' class="best"' if win and not (c.needs_positions and m in flat) else ""
            cells.append(f"<td{mark}>{c.fmt(v)}</td>")
        rows.append(_model_row(data, m, cells, tags))
    return _model_table_html(table_id, head, rows)


def per_fold_table(data: RunData, models: Sequence[str], metric: str, split: str = "test") -> str:
    """HTML table of one metric per model (rows) and fold (columns), negatives marked; or ''."""
    per: dict[str, dict[str, float]] = {}
    for m in models:
        folds = get_path(data.model_entries.get(m), split, "per_fold")
        if isinstance(folds, dict):
            per[m] = {str(k): as_float(get_path(v, metric)) for k, v in folds.items()}
    fold_ids = sorted(
        {k for d in per.values() for k in d},
        key=lambda k: (0, int(k), "") if k.isdigit() else (1, 0, k),
    )
    if not fold_ids:
        return ""
    formatter = fmt_metric(metric)
    head = "".join(f"<th>fold {escape(k)}</th>" for k in fold_ids)
    rows = []
    for m in models:
        cells = []
        for k in fold_ids:
            v = per.get(m, {}).get(k, math.nan)
            neg = ' class="neg"' if math.isfinite(v) and v < 0 else ""
            cells.append(f"<td{neg}>{formatter(v)}</td>")
        rows.append(_model_row(data, m, cells))
    return _model_table_html("metrics-per-fold", head, rows)


def _model_row(data: RunData, model: str, cells: Sequence[str], tags: str = "") -> str:
    """One ``<tr>`` of a per-model table: the model's name and tags, then its cells."""
    cls = ' class="baseline"' if data.is_baseline(model) else ""
    return f'<tr{cls}><th scope="row">{escape(model)}{tags}</th>{"".join(cells)}</tr>'


def _model_table_html(table_id: str, head: str, rows: Sequence[str]) -> str:
    """A numeric table with a leading "Model" column, in a ``<div>`` that scrolls if needed."""
    return (
        f'<div class="table-wrap"><table class="num" id="{table_id}">'
        f"<thead><tr><th>Model</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
        "</table></div>"
    )


def facts_table(facts: Sequence[tuple[str, str]]) -> str:
    """Two-column key/value table; values are trusted HTML (escape them before)."""
    rows = "".join(f'<tr><th scope="row">{escape(k)}</th><td>{v}</td></tr>' for k, v in facts)
    return f'<table class="facts">{rows}</table>'


def folds_table(folds: Sequence[dict[str, object]]) -> str:
    """Walk-forward folds with each segment's first and last bar and its length."""

    def seg(fold: dict[str, object], part: str) -> str:
        s = fold.get(part)
        if not isinstance(s, dict) or not s.get("n_bars"):
            return DASH
        return (
            f"{fmt_time(s.get('start'))} \u2192 {fmt_time(s.get('end'))} "
            f'<span class="muted">({fmt(s.get("n_bars"), "int")} bars)</span>'
        )

    rows = "".join(
        f"<tr><td>{escape(str(f.get('fold', i)))}</td><td>{seg(f, 'train')}</td>"
        f"<td>{seg(f, 'valid')}</td><td>{seg(f, 'test')}</td></tr>"
        for i, f in enumerate(folds)
    )
    return (
        '<div class="table-wrap"><table id="folds-table"><thead><tr><th>Fold</th>'
        "<th>Train</th><th>Valid</th><th>Test</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
    )


def significance_table(data: RunData, models: Sequence[str]) -> str:
    """HTML table of the ``significance`` entries of ``metrics.json``, or '' when none has one.

    One row per model that has the entry: mean Rank IC, its Newey-West t (and the critical value
    it is judged against in the cell's tooltip), 95% interval, annualised net Sharpe ratio and
    interval, Deflated Sharpe ratio, trials counted, and whether the Rank IC is significant.
    """
    rows = []
    for m in models:
        s = get_path(data.model_entries.get(m), "significance")
        if not isinstance(s, dict):
            continue
        crit = as_float(s.get("rank_ic_crit"))
        verdict = s.get("significant")
        cells = [
            f"<td>{fmt(s.get('mean_rank_ic'))}</td>",
            f'<td title="critical value {fmt(crit, "ratio")}">'
            f"{fmt(s.get('rank_ic_t'), 'ratio')}</td>",
            f"<td>{_interval(s.get('rank_ic_ci'), 'num')}</td>",
            f"<td>{fmt(s.get('sharpe'), 'ratio')}</td>",
            f"<td>{_interval(s.get('sharpe_ci'), 'ratio')}</td>",
            f"<td>{fmt(s.get('dsr'), 'pct')}</td>",
            f"<td>{fmt(s.get('n_trials'), 'int')}</td>",
            '<td class="best">yes</td>'
            if verdict is True
            else f"<td>{'no' if verdict is False else DASH}</td>",
        ]
        rows.append(_model_row(data, m, cells))
    if not rows:
        return ""
    heads = (
        ("Mean Rank IC", "mean of the per-date Rank IC"),
        ("t (NW)", "Newey-West t-statistic of the mean Rank IC"),
        ("95% CI", "studentized block-bootstrap interval of the mean Rank IC"),
        ("Sharpe net", "annualised Sharpe ratio after costs"),
        ("Sharpe 95% CI", "studentized block-bootstrap interval of the Sharpe ratio"),
        ("DSR", "Deflated Sharpe ratio: probability the true Sharpe beats the best of the trials"),
        ("Trials", "configurations counted when deflating the Sharpe ratio"),
        ("Significant", "Rank IC: |t| above its critical value and the interval excludes 0"),
    )
    head = "".join(f'<th title="{escape(t)}">{escape(h)}</th>' for h, t in heads)
    return _model_table_html("significance-table", head, rows)


def _interval(value: object, kind: str) -> str:
    """``[lo, hi]`` of a two-element list, each through :func:`fmt`; "–" when absent."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return DASH
    lo, hi = (fmt(v, kind) for v in value)
    return DASH if lo == DASH and hi == DASH else f"[{lo}, {hi}]"
