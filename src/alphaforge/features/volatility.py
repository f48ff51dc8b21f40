"""Volatility features.

Realised volatility of log returns, range-based estimators (Parkinson 1980,
Garman & Klass 1980, Rogers & Satchell 1991), average true range (simple mean, not Wilder's
recursion, so the lookback is finite), downside volatility, volatility of volatility, and the
skewness / kurtosis of returns. All per bar (not annualised), over the symbol's own bars.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from alphaforge.features._core import Context, Family, Feature
from alphaforge.features._rolling import (
    lag,
    rolling_mean,
    rolling_skew_kurt,
    rolling_std,
    safe_div,
)
from alphaforge.features.returns import log_returns

RV_WINDOWS = (5, 10, 20, 60, 120)
RANGE_WINDOWS = (20, 60)
MOMENT_WINDOWS = (20, 60)
_OHLC = ("open", "high", "low", "close")


def realised_vol(ctx: Context, n: int) -> np.ndarray:
    """Std (ddof=1) of the last n one-bar log returns, (T, N). Shared, do not mutate."""
    return ctx.memo(("rv", n), lambda: rolling_std(log_returns(ctx), n, start=1))


def _range_vol(ctx: Context, n: int, estimator: str) -> np.ndarray:
    h, lo = ctx.field("high"), ctx.field("low")
    o, c = ctx.field("open"), ctx.field("close")
    if estimator == "parkinson":
        hl = np.log(h / lo)
        per_bar = hl * hl / (4.0 * np.log(2.0))
    elif estimator == "garman_klass":
        hl, co = np.log(h / lo), np.log(c / o)
        per_bar = 0.5 * hl * hl - (2.0 * np.log(2.0) - 1.0) * co * co
    else:  # rogers_satchell: drift-independent
        per_bar = np.log(h / c) * np.log(h / o) + np.log(lo / c) * np.log(lo / o)
    # each per-bar term is >= 0 on a valid bar; clip the prefix-sum rounding of an all-zero window
    return np.sqrt(np.maximum(rolling_mean(per_bar, n), 0.0))


def true_range(ctx: Context) -> np.ndarray:
    """max(high, close_(t-1)) - min(low, close_(t-1)), (T, N); row 0 a placeholder (start=1)."""

    def compute() -> np.ndarray:
        prev = lag(ctx.field("close"), 1)
        prev[0] = ctx.field("close")[0]  # placeholder, masked by start=1
        return np.maximum(ctx.field("high"), prev) - np.minimum(ctx.field("low"), prev)

    return ctx.memo("true_range", compute)


def _atr(ctx: Context, n: int, normalised: bool) -> np.ndarray:
    atr = rolling_mean(true_range(ctx), n, start=1)
    if normalised:
        atr /= ctx.field("close")
    return atr


def _downside_vol(ctx: Context, n: int) -> np.ndarray:
    neg = np.minimum(log_returns(ctx), 0.0)
    # root mean square of the negative returns (semi-deviation about 0)
    return np.sqrt(np.maximum(rolling_mean(neg * neg, n, start=1), 0.0))


def _vol_of_vol(ctx: Context) -> np.ndarray:
    return rolling_std(realised_vol(ctx, 10), 20, start=10)  # rv_10 is defined from row 10


def _moment(ctx: Context, n: int, which: int) -> np.ndarray:
    pair = ctx.memo(("skew_kurt", n), lambda: rolling_skew_kurt(log_returns(ctx), n, start=1))
    return pair[which]


def _rv_ratio(ctx: Context) -> np.ndarray:
    return safe_div(realised_vol(ctx, 5), realised_vol(ctx, 60))


def catalogue() -> list[Feature]:
    """The volatility family, in catalogue order."""
    fam, c, hlc = Family("volatility"), ("close",), ("high", "low", "close")
    for n in RV_WINDOWS:
        desc = f"Std (ddof=1) of the last {n} 1-bar log returns."
        fam.add(f"rv_{n}", n + 1, c, desc, partial(realised_vol, n=n))
    estimators = {"parkinson": ("high", "low"), "garman_klass": _OHLC, "rogers_satchell": _OHLC}
    for est, fields in estimators.items():
        for n in RANGE_WINDOWS:
            desc = f"{est.replace('_', '-')} range volatility, {n} bars."
            fam.add(f"{est}_{n}", n, fields, desc, partial(_range_vol, n=n, estimator=est))
    desc = "Average true range, simple 14-bar mean, price units."
    fam.add("atr_14", 15, hlc, desc, partial(_atr, n=14, normalised=False))
    desc = "14-bar average true range / close."
    fam.add("natr_14", 15, hlc, desc, partial(_atr, n=14, normalised=True))
    desc = "28-bar average true range / close."
    fam.add("natr_28", 29, hlc, desc, partial(_atr, n=28, normalised=True))
    for n in MOMENT_WINDOWS:
        desc = f"RMS of negative log returns, {n} bars."
        fam.add(f"downside_vol_{n}", n + 1, c, desc, partial(_downside_vol, n=n))
    desc = "20-bar std of the 10-bar realised vol."
    fam.add("vol_of_vol_20", 30, c, desc, _vol_of_vol)
    for which, (stat, what) in enumerate((("skew", "skewness"), ("kurt", "excess kurtosis"))):
        for n in MOMENT_WINDOWS:
            desc = f"Sample {what} of {n} log returns."
            fam.add(f"{stat}_{n}", n + 1, c, desc, partial(_moment, n=n, which=which))
    fam.add("rv_ratio_5_60", 61, c, "Vol regime: rv_5 / rv_60.", _rv_ratio)
    return fam.features
