"""Forecast metrics: pointwise errors, cross-sectional ranking quality and volatility loss.

Every metric is a pure function ``f(y_true, y_pred, ...)`` of two ``pd.Series`` indexed by a
``(timestamp, symbol)`` MultiIndex. Shared rules:

- **Alignment.** ``y_true`` and ``y_pred`` are aligned on their index (inner join); pairs where
  either side is NaN are dropped. Labels are NaN on the last ``h`` bars of a forward-looking
  label, so passing the whole label series with the predictions of one fold is fine.
- **Errors.** Inputs that are not Series, are empty, have duplicated or differently named index
  levels, share no index entry, hold ±inf, or leave no valid pair raise
  :class:`~alphaforge.errors.DataError`. Unknown metric names raise
  :class:`~alphaforge.errors.ConfigError` listing the valid ones.
- **Cross-sectional metrics** are computed per timestamp over the symbols valid at that
  timestamp, with grouped vectorised pandas/numpy ops (no per-timestamp Python). A timestamp with
  fewer than ``min_count`` valid symbols or with constant predictions (or, where noted, constant
  labels) is skipped: NaN in the per-timestamp series and left out of the mean. A single-symbol
  panel therefore gives NaN, not an error.
- **Ties** are handled without depending on row order: ranks are average ranks, and top-k /
  quantile memberships split a tied group fractionally (the expected value under uniformly random
  tie-breaking).

``METRICS`` names every metric for configs; :func:`evaluate` computes a set of them at once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np
import pandas as pd

from alphaforge.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

__all__ = [
    "METRICS",
    "MetricSpec",
    "default_metric_names",
    "direction_accuracy",
    "evaluate",
    "get_metric",
    "ic",
    "ic_series",
    "icir",
    "mae",
    "pct_return_mae",
    "per_timestamp",
    "qlike",
    "quantile_spread",
    "quantile_spread_series",
    "rank_ic",
    "rank_ic_series",
    "rank_icir",
    "rmse",
    "top_k_hit_rate",
    "top_k_hit_rate_series",
]

TS = "timestamp"  # index level every cross-sectional metric groups on


# ----------------------------------------------------------------------------- input handling


def _pairs(y_true: pd.Series, y_pred: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Align two series (inner join) as float64 and set both sides to NaN where either is NaN.

    Invalid pairs are masked rather than dropped so that timestamps with no valid pair still show
    up (as NaN) in per-timestamp series.
    """
    for name, s in (("y_true", y_true), ("y_pred", y_pred)):
        if not isinstance(s, pd.Series):
            raise DataError(f"{name} must be a pandas Series, got {type(s).__name__}")
        if len(s) == 0:
            raise DataError(f"{name} is empty")
        if not (pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)):
            raise DataError(f"{name} must be numeric, got dtype {s.dtype}")
        if s.index.has_duplicates:
            dup = s.index[s.index.duplicated()][0]
            raise DataError(f"{name} has duplicated index entries, first {dup!r}")
    if list(y_true.index.names) != list(y_pred.index.names):
        raise DataError(
            f"index levels differ: y_true {list(y_true.index.names)}, "
            f"y_pred {list(y_pred.index.names)} (expected ['timestamp', 'symbol'] for both)"
        )
    t, p = y_true.astype("float64").align(y_pred.astype("float64"), join="inner")
    if len(t) == 0:
        raise DataError(
            f"y_true ({len(y_true)} rows) and y_pred ({len(y_pred)} rows) share no index entry"
        )
    tv, pv = t.to_numpy(), p.to_numpy()
    for name, v in (("y_true", tv), ("y_pred", pv)):
        bad = np.isinf(v)
        if bad.any():
            raise DataError(
                f"{name} holds {int(bad.sum())} infinite values, first at "
                f"{t.index[np.flatnonzero(bad)[0]]!r}"
            )
    invalid = np.isnan(tv) | np.isnan(pv)
    if invalid.all():
        raise DataError(
            f"none of the {len(t)} aligned (y_true, y_pred) pairs has both sides non-NaN"
        )
    if invalid.any():
        t = t.mask(invalid)
        p = p.mask(invalid)
    return t, p


def _valid_arrays(y_true: pd.Series, y_pred: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Aligned, NaN-free float64 arrays of the valid pairs (for pointwise metrics)."""
    t, p = _pairs(y_true, y_pred)
    tv, pv = t.to_numpy(), p.to_numpy()
    keep = ~np.isnan(tv)  # the mask is shared by both sides after _pairs
    return tv[keep], pv[keep]


def _cross_sectional_pairs(y_true: pd.Series, y_pred: pd.Series) -> tuple[pd.Series, pd.Series]:
    t, p = _pairs(y_true, y_pred)
    if TS not in t.index.names:
        raise DataError(
            f"cross-sectional metrics need an index level named {TS!r}, "
            f"got levels {list(t.index.names)}"
        )
    return t, p


def _check_count(name: str, value: int, minimum: int) -> None:
    if int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


# ----------------------------------------------------------------------------- pointwise


def mae(y_true: pd.Series, y_pred: pd.Series) -> float:
    """Mean absolute error, ``mean |y_pred - y_true|`` over valid pairs.

    Args:
        y_true: Realised labels, indexed by ``(timestamp, symbol)``; NaN allowed.
        y_pred: Forecasts in the label's units, same index.

    Returns:
        MAE in the label's units (lower is better).

    Raises:
        DataError: Inputs empty, misaligned or with no valid pair.
    """
    t, p = _valid_arrays(y_true, y_pred)
    return float(np.mean(np.abs(p - t)))


def rmse(y_true: pd.Series, y_pred: pd.Series) -> float:
    """Root mean squared error, ``sqrt(mean (y_pred - y_true)^2)`` over valid pairs.

    Args:
        y_true: Realised labels, indexed by ``(timestamp, symbol)``; NaN allowed.
        y_pred: Forecasts in the label's units, same index.

    Returns:
        RMSE in the label's units (lower is better).

    Raises:
        DataError: Inputs empty, misaligned or with no valid pair.
    """
    t, p = _valid_arrays(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def pct_return_mae(y_true: pd.Series, y_pred: pd.Series) -> float:
    """MAE of return forecasts in percentage points: ``100 * mean |y_pred - y_true|``.

    Args:
        y_true: Realised returns as fractions (0.01 = 1%), indexed by ``(timestamp, symbol)``.
        y_pred: Forecast returns as fractions, same index.

    Returns:
        MAE in percent (0.5 means forecasts miss by half a percentage point on average).

    Raises:
        DataError: Inputs empty, misaligned or with no valid pair.
    """
    return 100.0 * mae(y_true, y_pred)


def direction_accuracy(y_true: pd.Series, y_pred: pd.Series) -> float:
    """Share of pairs with a non-zero label whose forecast has the label's sign.

    Pairs with ``y_true == 0`` are excluded (no direction to get right); a forecast of exactly 0
    counts as wrong.

    Args:
        y_true: Realised returns, indexed by ``(timestamp, symbol)``; NaN allowed.
        y_pred: Forecast returns (or scores whose sign is the forecast direction), same index.

    Returns:
        Accuracy in [0, 1] (0.5 is a coin flip); NaN when every valid label is zero.

    Raises:
        DataError: Inputs empty, misaligned or with no valid pair.
    """
    t, p = _valid_arrays(y_true, y_pred)
    moved = t != 0
    if not moved.any():
        return math.nan
    return float(np.mean(np.sign(p[moved]) == np.sign(t[moved])))


def qlike(
    y_true: pd.Series,
    y_pred: pd.Series,
    *,
    kind: Literal["vol", "var"] = "vol",
    floor: float | None = None,
) -> float:
    """QLIKE loss of volatility forecasts, ``mean(s2/f2 - log(s2/f2) - 1)``.

    ``s2`` is the realised variance and ``f2`` the forecast variance. The loss is 0 for a perfect
    forecast and positive otherwise; it is robust to noise in the realised proxy (its expectation
    is minimised by the true conditional variance, Patton 2011) and punishes under-forecasts more
    than over-forecasts.

    Args:
        y_true: Realised volatility (``kind="vol"``) or variance (``kind="var"``) labels, indexed
            by ``(timestamp, symbol)``; NaN allowed.
        y_pred: Forecasts in the same units as ``y_true``.
        kind: ``"vol"`` squares both inputs before comparing; ``"var"`` uses them as given.
        floor: If given, both inputs are clipped from below at this positive value (in the
            inputs' units) before the loss. If None, non-positive forecasts or labels raise.

    Returns:
        Mean QLIKE, dimensionless (lower is better).

    Raises:
        ConfigError: ``kind`` is not "vol" or "var".
        DataError: Inputs empty or misaligned, a label is negative, or (without ``floor``) a
            forecast or label is <= 0, where the loss is undefined or infinite.
        ValueError: ``floor`` is not positive.
    """
    if kind not in ("vol", "var"):
        raise ConfigError(f"qlike kind must be one of ['vol', 'var'], got {kind!r}")
    if floor is not None and not floor > 0:
        raise ValueError(f"floor must be > 0, got {floor!r}")
    t, p = _valid_arrays(y_true, y_pred)
    if (t < 0).any():
        raise DataError(
            f"qlike: {int((t < 0).sum())} labels are negative; realised "
            "volatility or variance cannot be"
        )
    if floor is None:
        for name, v in (("forecasts", p), ("labels", t)):
            if (v <= 0).any():
                raise DataError(
                    f"qlike: {int((v <= 0).sum())} {name} are <= 0 (min {v.min():g})"
                    "; QLIKE needs positive values, pass floor= to clip them"
                )
    else:
        t, p = np.maximum(t, floor), np.maximum(p, floor)
    if kind == "vol":
        t, p = t * t, p * p
    ratio = t / p  # (n,) realised over forecast variance
    return float(np.mean(ratio - np.log(ratio) - 1.0))


# ----------------------------------------------------------------------------- cross-sectional


def _pearson_by_timestamp(x: pd.Series, y: pd.Series, min_count: int) -> pd.Series:
    """Pearson correlation of x and y within each timestamp; x, y share NaN positions."""
    gx = x.groupby(level=TS, sort=True)
    gy = y.groupby(level=TS, sort=True)
    dx = x - gx.transform("mean")  # centre within timestamp: two-pass, stable for tiny spreads
    dy = y - gy.transform("mean")
    sums = (
        pd.DataFrame({"xx": dx * dx, "yy": dy * dy, "xy": dx * dy})
        .groupby(level=TS, sort=True)
        .sum()
    )
    # exact constancy test: centred sums of a constant column can be ~1e-34 instead of 0
    flat = (gx.max() == gx.min()) | (gy.max() == gy.min())
    skip = ((gx.count() < min_count) | flat).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sums["xy"].to_numpy() / np.sqrt(sums["xx"].to_numpy() * sums["yy"].to_numpy())
    r = np.clip(r, -1.0, 1.0)
    r[skip] = np.nan
    return pd.Series(r, index=sums.index)


def ic_series(y_true: pd.Series, y_pred: pd.Series, *, min_count: int = 2) -> pd.Series:
    """Information coefficient per timestamp: Pearson correlation across symbols.

    Args:
        y_true: Realised labels, indexed by ``(timestamp, symbol)``; NaN allowed.
        y_pred: Forecasts or scores, same index.
        min_count: Fewest valid symbols a timestamp needs; fewer gives NaN.

    Returns:
        Series named ``"ic"`` indexed by sorted timestamp, values in [-1, 1]; NaN where the
        timestamp has fewer than ``min_count`` valid symbols or constant labels or forecasts.

    Raises:
        DataError: Inputs empty, misaligned, with no valid pair or no ``timestamp`` level.
        ValueError: ``min_count`` < 2.
    """
    _check_count("min_count", min_count, 2)
    t, p = _cross_sectional_pairs(y_true, y_pred)
    return _pearson_by_timestamp(p, t, min_count).rename("ic")


def rank_ic_series(y_true: pd.Series, y_pred: pd.Series, *, min_count: int = 2) -> pd.Series:
    """Rank IC per timestamp: Spearman correlation across symbols.

    Computed as the Pearson correlation of within-timestamp average ranks (ties share the mean
    rank), which is what ``scipy.stats.spearmanr`` returns.

    Args:
        y_true: Realised labels, indexed by ``(timestamp, symbol)``; NaN allowed.
        y_pred: Forecasts or scores, same index.
        min_count: Fewest valid symbols a timestamp needs; fewer gives NaN.

    Returns:
        Series named ``"rank_ic"`` indexed by sorted timestamp, values in [-1, 1]; NaN where
        skipped (see :func:`ic_series`).

    Raises:
        DataError: Inputs empty, misaligned, with no valid pair or no ``timestamp`` level.
        ValueError: ``min_count`` < 2.
    """
    _check_count("min_count", min_count, 2)
    t, p = _cross_sectional_pairs(y_true, y_pred)
    rt = t.groupby(level=TS).rank(method="average")  # NaN pairs stay NaN
    rp = p.groupby(level=TS).rank(method="average")
    return _pearson_by_timestamp(rp, rt, min_count).rename("rank_ic")


def _ratio(series: pd.Series) -> float:
    """Mean over standard deviation (ddof=1) of the non-NaN values; NaN if undefined."""
    s = series.dropna()
    if len(s) < 2:
        return math.nan
    sd = float(s.std(ddof=1))
    return float(s.mean()) / sd if sd > 0 else math.nan


def ic(y_true: pd.Series, y_pred: pd.Series, *, min_count: int = 2) -> float:
    """Mean per-timestamp IC (Pearson), over timestamps not skipped.

    Args:
        y_true: Realised labels, indexed by ``(timestamp, symbol)``; NaN allowed.
        y_pred: Forecasts or scores, same index.
        min_count: Fewest valid symbols a timestamp needs.

    Returns:
        Mean IC in [-1, 1] (higher is better); NaN if every timestamp is skipped.

    Raises:
        DataError: Inputs empty, misaligned, with no valid pair or no ``timestamp`` level.
    """
    return float(ic_series(y_true, y_pred, min_count=min_count).mean())


def rank_ic(y_true: pd.Series, y_pred: pd.Series, *, min_count: int = 2) -> float:
    """Mean per-timestamp rank IC (Spearman), over timestamps not skipped.

    Args:
        y_true: Realised labels, indexed by ``(timestamp, symbol)``; NaN allowed.
        y_pred: Forecasts or scores, same index.
        min_count: Fewest valid symbols a timestamp needs.

    Returns:
        Mean rank IC in [-1, 1] (higher is better); NaN if every timestamp is skipped.

    Raises:
        DataError: Inputs empty, misaligned, with no valid pair or no ``timestamp`` level.
    """
    return float(rank_ic_series(y_true, y_pred, min_count=min_count).mean())


def ts_rank_ic(y_true: pd.Series, y_pred: pd.Series) -> float:
    """Spearman correlation over all scored rows at once (for one symbol: over time).

    The tuning metric of per-symbol studies, where a per-timestamp Rank IC is undefined.

    Returns:
        Value in [-1, 1]; NaN with fewer than 2 valid pairs or constant labels or forecasts.

    Raises:
        DataError: Inputs empty or misaligned.
    """
    t, p = _valid_arrays(y_true, y_pred)
    if len(t) < 2 or t.min() == t.max() or p.min() == p.max():
        return float("nan")
    rt = pd.Series(t).rank(method="average").to_numpy()
    rp = pd.Series(p).rank(method="average").to_numpy()
    return float(np.clip(np.corrcoef(rp, rt)[0, 1], -1.0, 1.0))


def icir(y_true: pd.Series, y_pred: pd.Series, *, min_count: int = 2) -> float:
    """IC information ratio: mean / standard deviation (ddof=1) of the per-timestamp IC.

    Not annualised (multiply by ``sqrt(bars per year)`` to annualise).

    Args:
        y_true: Realised labels, indexed by ``(timestamp, symbol)``; NaN allowed.
        y_pred: Forecasts or scores, same index.
        min_count: Fewest valid symbols a timestamp needs.

    Returns:
        ICIR, dimensionless, per bar (higher is better); NaN with fewer than two non-skipped
        timestamps or a constant IC series.

    Raises:
        DataError: Inputs empty, misaligned, with no valid pair or no ``timestamp`` level.
    """
    return _ratio(ic_series(y_true, y_pred, min_count=min_count))


def rank_icir(y_true: pd.Series, y_pred: pd.Series, *, min_count: int = 2) -> float:
    """Rank-IC information ratio: mean / standard deviation (ddof=1) of per-timestamp rank IC.

    Args:
        y_true: Realised labels, indexed by ``(timestamp, symbol)``; NaN allowed.
        y_pred: Forecasts or scores, same index.
        min_count: Fewest valid symbols a timestamp needs.

    Returns:
        Rank ICIR, dimensionless, per bar, not annualised (higher is better); NaN when undefined
        (see :func:`icir`).

    Raises:
        DataError: Inputs empty, misaligned, with no valid pair or no ``timestamp`` level.
    """
    return _ratio(rank_ic_series(y_true, y_pred, min_count=min_count))


def _top_membership(v: pd.Series, k: pd.Series | int, *, largest: bool = True) -> pd.Series:
    """Chance that each row is among the ``k`` largest (or smallest) of its timestamp.

    1 or 0 without ties; a tied group straddling the cut shares the remaining slots equally
    (the probability under uniformly random tie-breaking). NaN rows stay NaN.
    """
    g = v.groupby(level=TS)
    best = g.rank(method="min", ascending=not largest).to_numpy()  # first place of the tie group
    size = g.rank(method="max", ascending=not largest).to_numpy() - best + 1
    kk = k.to_numpy() if isinstance(k, pd.Series) else k
    slots = np.clip(kk - (best - 1), 0, size)  # places of the top k left for this tie group
    return pd.Series(slots / size, index=v.index)


def top_k_hit_rate_series(
    y_true: pd.Series, y_pred: pd.Series, k: int, *, min_count: int | None = None
) -> pd.Series:
    """Top-k hit rate per timestamp: share of the k highest forecasts that realise a top-k label.

    ``|top_k(y_pred) ∩ top_k(y_true)| / k`` within each timestamp. Ties on either side count
    fractionally (expected overlap under random tie-breaking), so the value does not depend on
    row order. A random ranking scores ``k / n`` on average with ``n`` valid symbols.

    Args:
        y_true: Realised labels, indexed by ``(timestamp, symbol)``; NaN allowed.
        y_pred: Forecasts or scores (higher = expected higher label), same index.
        k: Number of top symbols, >= 1.
        min_count: Fewest valid symbols a timestamp needs; defaults to ``k + 1`` (with ``n <= k``
            every symbol is in the top k and the hit rate is trivially 1).

    Returns:
        Series named ``f"top{k}_hit_rate"`` indexed by sorted timestamp, values in [0, 1]; NaN
        where a timestamp has too few valid symbols or constant labels or forecasts.

    Raises:
        DataError: Inputs empty, misaligned, with no valid pair or no ``timestamp`` level.
        ValueError: ``k`` or ``min_count`` < 1.
    """
    _check_count("k", k, 1)
    min_count = k + 1 if min_count is None else min_count
    _check_count("min_count", min_count, 1)
    t, p = _cross_sectional_pairs(y_true, y_pred)
    both = _top_membership(p, k) * _top_membership(t, k)  # (rows,) P(in both top-k sets)
    gt, gp = t.groupby(level=TS, sort=True), p.groupby(level=TS, sort=True)
    hits = both.groupby(level=TS, sort=True).sum() / k
    skip = (gp.count() < min_count) | (gp.max() == gp.min()) | (gt.max() == gt.min())
    return hits.mask(skip).rename(f"top{k}_hit_rate")


def top_k_hit_rate(
    y_true: pd.Series, y_pred: pd.Series, k: int, *, min_count: int | None = None
) -> float:
    """Mean per-timestamp top-k hit rate (see :func:`top_k_hit_rate_series`).

    Args:
        y_true: Realised labels, indexed by ``(timestamp, symbol)``; NaN allowed.
        y_pred: Forecasts or scores, same index.
        k: Number of top symbols, >= 1.
        min_count: Fewest valid symbols a timestamp needs; defaults to ``k + 1``.

    Returns:
        Hit rate in [0, 1] (higher is better); NaN if every timestamp is skipped.

    Raises:
        DataError: Inputs empty, misaligned, with no valid pair or no ``timestamp`` level.
    """
    return float(top_k_hit_rate_series(y_true, y_pred, k, min_count=min_count).mean())


def quantile_spread_series(
    y_true: pd.Series, y_pred: pd.Series, q: int = 5, *, min_count: int | None = None
) -> pd.Series:
    """Long-short quantile spread per timestamp: mean label of the top minus the bottom bucket.

    With ``n`` valid symbols at a timestamp, the top bucket holds the ``n // q`` highest
    predictions and the bottom bucket the ``n // q`` lowest (equal sizes, so the spread is a
    balanced long-short; ties at a bucket edge are split fractionally).

    Args:
        y_true: Realised labels (e.g. forward returns), indexed by ``(timestamp, symbol)``.
        y_pred: Forecasts or scores, same index.
        q: Number of quantiles, >= 2 (5 = quintiles).
        min_count: Fewest valid symbols a timestamp needs; defaults to ``q``.

    Returns:
        Series named ``"quantile_spread"`` indexed by sorted timestamp, in the label's units
        (e.g. a return per horizon); NaN where a timestamp has too few valid symbols or constant
        forecasts. Constant labels give 0.

    Raises:
        DataError: Inputs empty, misaligned, with no valid pair or no ``timestamp`` level.
        ValueError: ``q`` < 2 or ``min_count`` < 1.
    """
    _check_count("q", q, 2)
    min_count = q if min_count is None else min_count
    _check_count("min_count", min_count, 1)
    t, p = _cross_sectional_pairs(y_true, y_pred)
    gp = p.groupby(level=TS, sort=True)
    size = gp.transform("count") // q  # (rows,) bucket size of the row's timestamp
    top = _top_membership(p, size) * t
    bottom = _top_membership(p, size, largest=False) * t
    diff = (top - bottom).groupby(level=TS, sort=True).sum()
    n = gp.count()
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = diff / (n // q)
    skip = (n < min_count) | (n < q) | (gp.max() == gp.min())
    return spread.mask(skip).rename("quantile_spread")


def quantile_spread(
    y_true: pd.Series, y_pred: pd.Series, q: int = 5, *, min_count: int | None = None
) -> float:
    """Mean per-timestamp top-minus-bottom quantile spread (see :func:`quantile_spread_series`).

    Args:
        y_true: Realised labels (e.g. forward returns), indexed by ``(timestamp, symbol)``.
        y_pred: Forecasts or scores, same index.
        q: Number of quantiles, >= 2.
        min_count: Fewest valid symbols a timestamp needs; defaults to ``q``.

    Returns:
        Mean spread in the label's units (higher is better); NaN if every timestamp is skipped.

    Raises:
        DataError: Inputs empty, misaligned, with no valid pair or no ``timestamp`` level.
    """
    return float(quantile_spread_series(y_true, y_pred, q, min_count=min_count).mean())


def per_timestamp(y_true: pd.Series, y_pred: pd.Series) -> pd.DataFrame:
    """Cross-sectional metrics per timestamp, for "IC over time" plots.

    Args:
        y_true: Realised labels, indexed by ``(timestamp, symbol)``; NaN allowed.
        y_pred: Forecasts or scores, same index.

    Returns:
        Frame indexed by sorted timestamp with float columns ``ic``, ``rank_ic``,
        ``quantile_spread`` (q=5) and ``top5_hit_rate``; NaN where a timestamp is skipped.

    Raises:
        DataError: Inputs empty, misaligned, with no valid pair or no ``timestamp`` level.
    """
    t, p = _cross_sectional_pairs(y_true, y_pred)
    return pd.concat(
        [
            ic_series(t, p),
            rank_ic_series(t, p),
            quantile_spread_series(t, p),
            top_k_hit_rate_series(t, p, 5),
        ],
        axis=1,
    )


# ----------------------------------------------------------------------------- name table


@dataclass(frozen=True)
class MetricSpec:
    """One named metric, as configs and reports refer to it.

    Args:
        name: Key in :data:`METRICS`.
        fn: ``fn(y_true, y_pred) -> float``.
        direction: ``"maximize"`` or ``"minimize"`` (what a tuner should do with it).
        kind: ``"pointwise"``, ``"cross_sectional"`` or ``"volatility"``.
        description: One line for tables and help text.
    """

    name: str
    fn: Callable[[pd.Series, pd.Series], float]
    direction: Literal["maximize", "minimize"]
    kind: Literal["pointwise", "cross_sectional", "volatility"]
    description: str


METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        MetricSpec("mae", mae, "minimize", "pointwise", "mean absolute error, label units"),
        MetricSpec("rmse", rmse, "minimize", "pointwise", "root mean squared error, label units"),
        MetricSpec(
            "ts_rank_ic",
            ts_rank_ic,
            "maximize",
            "pointwise",
            "Spearman correlation over the scored bars (one symbol: over time)",
        ),
        MetricSpec(
            "pct_return_mae",
            pct_return_mae,
            "minimize",
            "pointwise",
            "mean absolute error of returns, percentage points",
        ),
        MetricSpec(
            "direction_accuracy",
            direction_accuracy,
            "maximize",
            "pointwise",
            "share of non-zero labels whose sign the forecast gets right",
        ),
        MetricSpec(
            "ic", ic, "maximize", "cross_sectional", "mean per-timestamp Pearson correlation"
        ),
        MetricSpec(
            "rank_ic",
            rank_ic,
            "maximize",
            "cross_sectional",
            "mean per-timestamp Spearman correlation",
        ),
        MetricSpec(
            "icir", icir, "maximize", "cross_sectional", "mean / std of per-timestamp IC, per bar"
        ),
        MetricSpec(
            "rank_icir",
            rank_icir,
            "maximize",
            "cross_sectional",
            "mean / std of per-timestamp rank IC, per bar",
        ),
        MetricSpec(
            "top5_hit_rate",
            partial(top_k_hit_rate, k=5),
            "maximize",
            "cross_sectional",
            "share of the 5 highest forecasts that realise a top-5 label",
        ),
        MetricSpec(
            "top10_hit_rate",
            partial(top_k_hit_rate, k=10),
            "maximize",
            "cross_sectional",
            "share of the 10 highest forecasts that realise a top-10 label",
        ),
        MetricSpec(
            "quantile_spread",
            quantile_spread,
            "maximize",
            "cross_sectional",
            "mean label of top minus bottom forecast quintile, label units",
        ),
        MetricSpec(
            "qlike",
            qlike,
            "minimize",
            "volatility",
            "QLIKE loss of volatility forecasts (labels and forecasts are vols)",
        ),
    )
}

_DEFAULTS: dict[str, tuple[str, ...]] = {
    "return": tuple(n for n in METRICS if n != "qlike"),
    "volatility": tuple(
        n
        for n in METRICS
        if n not in ("direction_accuracy", "top5_hit_rate", "top10_hit_rate", "pct_return_mae")
    ),
}


def get_metric(name: str) -> MetricSpec:
    """Look up a metric by name.

    Args:
        name: A key of :data:`METRICS`, e.g. ``"rank_ic"``.

    Returns:
        The metric's :class:`MetricSpec`.

    Raises:
        ConfigError: Unknown name; the message lists the valid ones.
    """
    try:
        return METRICS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown metric {name!r}; valid: {', '.join(METRICS)}") from None


def default_metric_names(label_kind: Literal["return", "volatility"] = "return") -> tuple[str, ...]:
    """Metrics :func:`evaluate` computes when no names are given.

    Args:
        label_kind: ``"return"``: every metric but qlike. ``"volatility"``: adds qlike and drops
            direction accuracy, the top-k hit rates and pct_return_mae.

    Returns:
        Metric names in :data:`METRICS` order.

    Raises:
        ConfigError: Unknown ``label_kind``.
    """
    try:
        return _DEFAULTS[label_kind]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown label_kind {label_kind!r}; valid: {', '.join(_DEFAULTS)}"
        ) from None


def evaluate(
    y_true: pd.Series,
    y_pred: pd.Series,
    names: Iterable[str] | None = None,
    *,
    label_kind: Literal["return", "volatility"] = "return",
    undefined: Literal["raise", "nan"] = "raise",
) -> dict[str, float]:
    """Compute several metrics of one set of forecasts.

    Args:
        y_true: Realised labels, indexed by ``(timestamp, symbol)``; NaN allowed.
        y_pred: Forecasts, same index.
        names: Metric names from :data:`METRICS`; None uses
            :func:`default_metric_names` for ``label_kind``.
        label_kind: What the labels are, ``"return"`` or ``"volatility"``; only picks defaults.
        undefined: ``"nan"`` turns a metric that cannot score these forecasts (e.g. QLIKE of
            a non-positive volatility forecast) into NaN with a logged warning instead of an
            error, so one model's bad forecast does not stop a whole experiment.

    Returns:
        ``{name: value}`` in the requested order; values are Python floats (NaN where a metric is
        undefined), ready for ``json.dump``.

    Raises:
        ConfigError: Unknown metric name or ``label_kind``.
        DataError: Inputs empty, misaligned or with no valid pair.
    """
    if isinstance(names, str):  # a lone name, not an iterable of characters
        names = [names]
    chosen = list(default_metric_names(label_kind) if names is None else names)
    specs = [get_metric(n) for n in chosen]  # fail on a bad name before any work
    t, p = _pairs(y_true, y_pred)  # validate and align once; every metric then sees clean pairs
    out: dict[str, float] = {}
    for spec in specs:
        try:
            out[spec.name] = float(spec.fn(t, p))
        except DataError as exc:
            if undefined == "raise":
                raise
            logger.warning("metric %s undefined: %s", spec.name, exc)
            out[spec.name] = float("nan")
    return out
