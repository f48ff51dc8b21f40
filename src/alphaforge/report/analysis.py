"""The numbers behind the report's plots: pure, vectorised functions of run-directory frames.

Nothing here draws; :mod:`alphaforge.report.plots` turns these frames into images. All functions
are deterministic (fixed seed for the scatter subsample, ties ranked by row order after sorting).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from alphaforge.errors import DataError
from alphaforge.metrics import per_timestamp

logger = logging.getLogger(__name__)

TS, SYM = "timestamp", "symbol"
#: Quantiles of the ``quantile_spread`` metric (quintiles: see ``alphaforge.metrics``).
METRIC_QUANTILES = 5


def spread_label(q: int) -> str:
    """The one name of a top-minus-bottom spread over ``q`` quantiles, e.g. ``"Q5−Q1"``.

    Tables and plots both use it, so a chart of quartiles never reads like the table's quintiles.
    """
    return f"Q{q}\u2212Q1"


def quantile_name(q: int) -> str:
    """``"quintile"`` for 5 groups, ``"quartile"`` for 4, ...; ``"quantile"`` otherwise."""
    return {3: "tercile", 4: "quartile", 5: "quintile", 10: "decile"}.get(q, "quantile")


def split_predictions(preds: pd.DataFrame, model: str, split: str = "test") -> pd.DataFrame:
    """One model's rows of one split, one row per (timestamp, symbol), sorted.

    Overlapping test windows (``step < test``) can predict a bar twice; the later fold wins.

    Args:
        preds: ``predictions.parquet`` frame.
        model: Model name.
        split: ``"valid"`` or ``"test"``.

    Returns:
        Columns ``timestamp, symbol, fold, y_true, y_pred``, sorted by timestamp then symbol.
    """
    rows = preds[(preds["model"] == model) & (preds["split"] == split)]
    rows = rows.sort_values(["fold", TS, SYM], kind="stable")
    rows = rows.drop_duplicates([TS, SYM], keep="last").sort_values([TS, SYM], kind="stable")
    return rows[[TS, SYM, "fold", "y_true", "y_pred"]].reset_index(drop=True)


def equity_curve(returns: pd.Series) -> pd.Series:
    """Compounded equity of per-bar simple returns, starting from 1; NaN returns count as 0."""
    return (1.0 + returns.fillna(0.0)).cumprod()


def drawdown(equity: pd.Series) -> pd.Series:
    """Drawdown of an equity curve (<= 0); the starting capital of 1 counts as a peak."""
    peak = np.maximum(equity.cummax(), 1.0)
    return equity / peak - 1.0


def backtest_returns(backtest: pd.DataFrame, model: str, variant: str = "base") -> pd.DataFrame:
    """One model's per-bar backtest rows of one variant, indexed by sorted timestamp."""
    rows = backtest[(backtest["model"] == model) & (backtest["variant"] == variant)]
    return rows.sort_values(TS, kind="stable").set_index(TS)


def ic_over_time(rows: pd.DataFrame) -> pd.DataFrame | None:
    """Per-timestamp IC and rank IC of one model's predictions.

    Args:
        rows: From :func:`split_predictions`.

    Returns:
        Frame indexed by timestamp with columns ``ic`` and ``rank_ic`` (NaN where a timestamp has
        fewer than 2 valid names), or None when no timestamp has a defined value.
    """
    if rows.empty:
        return None
    idx = pd.MultiIndex.from_arrays([rows[TS], rows[SYM]], names=[TS, SYM])
    try:
        per = per_timestamp(
            pd.Series(rows["y_true"].to_numpy(), index=idx),
            pd.Series(rows["y_pred"].to_numpy(), index=idx),
        )
    except DataError as exc:  # e.g. no valid pair at all
        logger.info("report: no IC series: %s", exc)
        return None
    out = per[["ic", "rank_ic"]]
    return None if out.isna().all().all() else out


def rolling_mean(series: pd.Series, window: int = 20) -> pd.Series:
    """Trailing mean over ``window`` rows (at least a quarter of them valid)."""
    window = max(1, min(window, len(series)))
    return series.rolling(window, min_periods=max(1, window // 4)).mean()


def quantile_returns(rows: pd.DataFrame, n_quantiles: int = 5) -> pd.DataFrame | None:
    """Mean realised label per prediction quantile per timestamp.

    At each timestamp the valid names (finite ``y_true`` and ``y_pred``) are ranked by ``y_pred``
    (ties by symbol) and cut into ``q`` equal-count buckets, ``Q1`` lowest predictions; ``q`` is
    ``n_quantiles``, lowered to the median number of names per timestamp when that is smaller.
    Timestamps with fewer than ``q`` names are skipped.

    Args:
        rows: From :func:`split_predictions`.
        n_quantiles: Number of buckets wanted.

    Returns:
        Frame indexed by timestamp, columns ``Q1..Qq``, mean ``y_true`` per bucket; None when
        there are fewer than 2 names per timestamp.
    """
    ok = rows[np.isfinite(rows["y_true"]) & np.isfinite(rows["y_pred"])]
    if ok.empty:
        return None
    n = ok.groupby(TS)[SYM].transform("size")
    q = min(n_quantiles, int(n.groupby(ok[TS]).first().median()))
    if q < 2:
        return None
    ok, n = ok[n >= q], n[n >= q]
    ok = ok.sort_values([TS, "y_pred", SYM], kind="stable")
    rank = ok.groupby(TS).cumcount().to_numpy() + 1  # 1..n within each timestamp
    bucket = np.ceil(rank * q / n.loc[ok.index].to_numpy()).astype(int)
    table = ok.groupby([ok[TS], bucket])["y_true"].mean().unstack()
    table.columns = [f"Q{int(c)}" for c in table.columns]
    table.index.name = TS
    return table


def scatter_sample(
    rows: pd.DataFrame, n_max: int = 5000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n_max`` (y_pred, y_true) pairs with both finite, drawn with a fixed seed."""
    ok = rows[np.isfinite(rows["y_true"]) & np.isfinite(rows["y_pred"])]
    x, y = ok["y_pred"].to_numpy(np.float64), ok["y_true"].to_numpy(np.float64)
    if len(x) > n_max:
        pick = np.sort(np.random.default_rng(seed).choice(len(x), n_max, replace=False))
        x, y = x[pick], y[pick]
    return x, y


def mean_by_feature(frame: pd.DataFrame, value: str, top: int = 20) -> pd.DataFrame:
    """Mean and std over folds of ``value`` per feature, the ``top`` largest means first.

    Args:
        frame: One model's rows with columns ``fold``, ``feature`` and ``value``.
        value: Value column (``importance`` or ``gate``).
        top: Number of features kept.

    Returns:
        Frame indexed by feature with ``mean`` and ``std`` (0 with a single fold); ties in the
        mean are ordered by feature name.
    """
    vals = pd.to_numeric(frame[value], errors="coerce")
    stats = vals.groupby(frame["feature"].astype(str)).agg(["mean", "std"])
    stats["std"] = stats["std"].fillna(0.0)
    stats = stats[np.isfinite(stats["mean"])]
    stats = stats.reset_index().sort_values(
        ["mean", "feature"], ascending=[False, True], kind="stable"
    )
    return stats.head(top).set_index("feature")
