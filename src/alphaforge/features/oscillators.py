"""Bounded oscillators.

RSI (Cutler's variant: simple means of gains and losses, so the lookback is
finite; scaled to [0, 1]), stochastic %K / %D, Williams %R, MACD (Appel; windowed EMAs, divided by
close so symbols compare), Bollinger %B and bandwidth (population std), and CCI (Lambert 1980).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from alphaforge.features._core import Context, Family, Feature
from alphaforge.features._rolling import (
    ema_window,
    lag,
    rolling_mean,
    rolling_mean_abs_dev,
    rolling_mean_var,
    rolling_sum,
    safe_div,
    window_ema,
)
from alphaforge.features.momentum import donchian_position, ema

RSI_WINDOWS = (6, 14, 28)
STOCH_N, STOCH_SMOOTH = 14, 3
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
BB_N, BB_K = 20, 2.0
CCI_N = 20

# bars before the MACD line / signal is defined
_MACD_LINE_LOOKBACK = ema_window(MACD_SLOW)
_MACD_SIGNAL_LOOKBACK = _MACD_LINE_LOOKBACK + ema_window(MACD_SIGNAL) - 1


def _rsi(ctx: Context, n: int) -> np.ndarray:
    close = ctx.field("close")
    move = close - lag(close, 1)
    move[0] = 0.0  # placeholder, masked by start=1
    gains = rolling_sum(np.maximum(move, 0.0), n, start=1)
    losses = rolling_sum(np.maximum(-move, 0.0), n, start=1)
    total = gains + losses
    rsi = safe_div(gains, total)
    rsi[total == 0.0] = 0.5  # no move at all in the window: neutral
    return rsi


def _stoch_k(ctx: Context) -> np.ndarray:
    return donchian_position(ctx, STOCH_N)  # %K is the close's position in the 14-bar range


def _stoch_d(ctx: Context) -> np.ndarray:
    return rolling_mean(_stoch_k(ctx), STOCH_SMOOTH, start=STOCH_N - 1)


def _williams_r(ctx: Context) -> np.ndarray:
    return _stoch_k(ctx) - 1.0  # -(HH - C) / (HH - LL), in [-1, 0]


def macd_line(ctx: Context) -> np.ndarray:
    """(EMA_12 - EMA_26) / close, (T, N). Shared, do not mutate."""
    return ctx.memo(
        "macd_line", lambda: (ema(ctx, MACD_FAST) - ema(ctx, MACD_SLOW)) / ctx.field("close")
    )


def _macd_signal(ctx: Context) -> np.ndarray:
    def compute() -> np.ndarray:
        span = MACD_SIGNAL
        return window_ema(macd_line(ctx), span, ema_window(span), start=_MACD_LINE_LOOKBACK - 1)

    return ctx.memo("macd_signal", compute)


def _macd_hist(ctx: Context) -> np.ndarray:
    return macd_line(ctx) - _macd_signal(ctx)


def _bollinger(ctx: Context, width: bool) -> np.ndarray:
    mean, var = ctx.memo(("bb", BB_N), lambda: rolling_mean_var(ctx.field("close"), BB_N, ddof=0))
    band = 2.0 * BB_K * np.sqrt(var)  # upper - lower
    if width:
        return band / mean
    return safe_div(ctx.field("close") - (mean - 0.5 * band), band)


def _cci(ctx: Context) -> np.ndarray:
    typical = (ctx.field("high") + ctx.field("low") + ctx.field("close")) / 3.0
    mean = rolling_mean(typical, CCI_N)
    mad = rolling_mean_abs_dev(typical, CCI_N)
    mad[mad <= 1e-12 * np.abs(mean)] = 0.0  # flat window: rounding noise is no deviation
    return safe_div(typical - mean, 0.015 * mad)


def catalogue() -> list[Feature]:
    """The oscillator family, in catalogue order."""
    fam, c, hlc = Family("oscillators"), ("close",), ("high", "low", "close")
    for n in RSI_WINDOWS:
        desc = f"RSI (Cutler, {n} bars) in [0, 1]: gains / (gains + losses)."
        fam.add(f"rsi_{n}", n + 1, c, desc, partial(_rsi, n=n))
    desc = "Stochastic %K: (c - LL_14) / (HH_14 - LL_14)."
    fam.add("stoch_k_14", STOCH_N, hlc, desc, _stoch_k)
    desc = "Stochastic %D: 3-bar mean of %K."
    fam.add("stoch_d_14", STOCH_N + STOCH_SMOOTH - 1, hlc, desc, _stoch_d)
    desc = "Williams %R in [-1, 0]: -(HH - c) / (HH - LL)."
    fam.add("williams_r_14", STOCH_N, hlc, desc, _williams_r)
    fam.add("macd", _MACD_LINE_LOOKBACK, c, "MACD line (EMA_12 - EMA_26) / close.", macd_line)
    desc = "MACD signal: EMA_9 of the MACD line."
    fam.add("macd_signal", _MACD_SIGNAL_LOOKBACK, c, desc, _macd_signal)
    desc = "MACD histogram: line - signal."
    fam.add("macd_hist", _MACD_SIGNAL_LOOKBACK, c, desc, _macd_hist)
    desc = "Bollinger %B: position of close in SMA_20 +- 2 std."
    fam.add("bb_pctb_20", BB_N, c, desc, partial(_bollinger, width=False))
    desc = "Bollinger bandwidth: 4 std_20 / SMA_20."
    fam.add("bb_width_20", BB_N, c, desc, partial(_bollinger, width=True))
    desc = "CCI: (tp - SMA_20(tp)) / (0.015 mean abs deviation)."
    fam.add("cci_20", CCI_N, hlc, desc, _cci)
    return fam.features
