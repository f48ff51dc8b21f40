"""Momentum and trend features.

Skip-month momentum (Jegadeesh & Titman 1993's 12-1), distances to
simple and exponential moving averages, moving-average crossovers, distance to the rolling
high / low (breakouts), Donchian channel position and the slope of a linear fit to log prices.

Exponential means here look at a finite window (`_rolling.window_ema`): 3 x span bars, capped at
252, so every feature has an honest finite lookback.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from alphaforge.features._core import Context, Family, Feature
from alphaforge.features._rolling import (
    ema_window,
    lag,
    rolling_max,
    rolling_mean,
    rolling_min,
    rolling_slope,
    safe_div,
    window_ema,
)

MOM_SKIP = 21  # bars skipped at the recent end: the short-term reversal month
MOM_HORIZONS = {"mom_3_1": 63, "mom_6_1": 126, "mom_12_1": 252}
MA_WINDOWS = (5, 10, 20, 50, 100, 200)
MA_CROSSES = ((5, 20), (20, 50), (50, 200))
BREAKOUT_WINDOWS = (20, 60, 250)
DONCHIAN_WINDOWS = (20, 60)
SLOPE_WINDOWS = (20, 60)


def sma(ctx: Context, n: int) -> np.ndarray:
    """Simple n-bar moving average of close, (T, N). Shared, do not mutate."""
    return ctx.memo(("sma", n), lambda: rolling_mean(ctx.field("close"), n))


def ema(ctx: Context, span: int) -> np.ndarray:
    """Windowed exponential moving average of close, (T, N). Shared, do not mutate."""
    return ctx.memo(("ema", span), lambda: window_ema(ctx.field("close"), span, ema_window(span)))


def highest(ctx: Context, n: int) -> np.ndarray:
    """Highest high of the last n bars, (T, N). Shared, do not mutate."""
    return ctx.memo(("highest", n), lambda: rolling_max(ctx.field("high"), n))


def lowest(ctx: Context, n: int) -> np.ndarray:
    """Lowest low of the last n bars, (T, N). Shared, do not mutate."""
    return ctx.memo(("lowest", n), lambda: rolling_min(ctx.field("low"), n))


def _momentum(ctx: Context, horizon: int) -> np.ndarray:
    close = ctx.field("close")
    # (T, N): c_(t-21) / c_(t-horizon) - 1, the recent month left out
    return lag(close, MOM_SKIP) / lag(close, horizon) - 1.0


def _sma_dist(ctx: Context, n: int) -> np.ndarray:
    return ctx.field("close") / sma(ctx, n) - 1.0


def _ema_dist(ctx: Context, n: int) -> np.ndarray:
    return ctx.field("close") / ema(ctx, n) - 1.0


def _ma_cross(ctx: Context, fast: int, slow: int) -> np.ndarray:
    return sma(ctx, fast) / sma(ctx, slow) - 1.0


def _dist_high(ctx: Context, n: int) -> np.ndarray:
    return ctx.field("close") / highest(ctx, n) - 1.0


def _dist_low(ctx: Context, n: int) -> np.ndarray:
    return ctx.field("close") / lowest(ctx, n) - 1.0


def donchian_position(ctx: Context, n: int) -> np.ndarray:
    """(close - lowest low) / (highest high - lowest low) over n bars; NaN for a flat channel."""
    lo = lowest(ctx, n)
    return safe_div(ctx.field("close") - lo, highest(ctx, n) - lo)


def _slope(ctx: Context, n: int) -> np.ndarray:
    log_close = ctx.memo("log_close", lambda: np.log(ctx.field("close")))
    return rolling_slope(log_close, n)


def catalogue() -> list[Feature]:
    """The momentum family, in catalogue order."""
    fam, c, hlc = Family("momentum"), ("close",), ("high", "low", "close")
    for name, h in MOM_HORIZONS.items():
        desc = f"Momentum c_(t-{MOM_SKIP}) / c_(t-{h}) - 1 (skip a month)."
        fam.add(name, h + 1, c, desc, partial(_momentum, horizon=h))
    for n in MA_WINDOWS:
        fam.add(f"sma_dist_{n}", n, c, f"close / SMA_{n} - 1.", partial(_sma_dist, n=n))
    for n in MA_WINDOWS:
        desc = f"close / EMA_{n} - 1; EMA over the last {ema_window(n)} bars, weights normalised."
        fam.add(f"ema_dist_{n}", ema_window(n), c, desc, partial(_ema_dist, n=n))
    for f, s in MA_CROSSES:
        desc = f"SMA_{f} / SMA_{s} - 1."
        fam.add(f"ma_cross_{f}_{s}", s, c, desc, partial(_ma_cross, fast=f, slow=s))
    for n in BREAKOUT_WINDOWS:
        desc = f"close / highest high of {n} bars - 1."
        fam.add(f"dist_high_{n}", n, ("high", "close"), desc, partial(_dist_high, n=n))
    for n in BREAKOUT_WINDOWS:
        desc = f"close / lowest low of {n} bars - 1."
        fam.add(f"dist_low_{n}", n, ("low", "close"), desc, partial(_dist_low, n=n))
    for n in DONCHIAN_WINDOWS:
        desc = f"Position of close in the {n}-bar high-low channel."
        fam.add(f"donchian_{n}", n, hlc, desc, partial(donchian_position, n=n))
    for n in SLOPE_WINDOWS:
        desc = f"OLS slope of ln(close) on bar number, {n} bars."
        fam.add(f"linreg_slope_{n}", n, c, desc, partial(_slope, n=n))
    return fam.features
