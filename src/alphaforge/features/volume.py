"""Volume and liquidity features.

Z-scores of log volume, volume ratios, on-balance volume
(Granville) as a normalised slope and a z-score, log dollar volume, Amihud (2002) illiquidity,
volume-price correlations and distance to the VWAP.

Zero-volume bars are legal: volume enters through log(1 + volume), ratios return NaN rather than
inf on a zero denominator. Volume NaN (close-only panels) makes these features NaN.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from alphaforge.features._core import Context, Family, Feature
from alphaforge.features._rolling import (
    lag,
    rolling_corr,
    rolling_mean,
    rolling_mean_var,
    rolling_sum,
    safe_div,
)
from alphaforge.features.returns import close_ratio, log_returns

VOLUME_Z_WINDOWS = (5, 20, 60)
AMIHUD_WINDOWS = (20, 60)
N = 20  # window of the other volume features


def log_volume(ctx: Context) -> np.ndarray:
    """ln(1 + volume), (T, N): finite on zero-volume bars. Shared, do not mutate."""
    return ctx.memo("log_volume", lambda: np.log1p(ctx.field("volume")))


def _signed_volume(ctx: Context) -> np.ndarray:
    # (T, N) sign(close_t - close_(t-1)) * volume_t; row 0 a placeholder 0 (start=1)
    def compute() -> np.ndarray:
        close = ctx.field("close")
        out = np.sign(close - lag(close, 1)) * ctx.field("volume")
        out[0] = 0.0
        return out

    return ctx.memo("signed_volume", compute)


def _volume_z(ctx: Context, n: int) -> np.ndarray:
    lv = log_volume(ctx)
    mean, var = rolling_mean_var(lv, n)
    return safe_div(lv - mean, np.sqrt(var))


def _volume_ratio(ctx: Context, fast: int) -> np.ndarray:
    volume = ctx.field("volume")
    num = volume if fast == 1 else rolling_mean(volume, fast)
    return safe_div(num, rolling_mean(volume, N))


def _obv_slope(ctx: Context) -> np.ndarray:
    net = rolling_sum(_signed_volume(ctx), N, start=1)
    return safe_div(net, rolling_sum(ctx.field("volume"), N, start=1))  # in [-1, 1]


def _obv_z(ctx: Context) -> np.ndarray:
    signed = _signed_volume(ctx)
    # OBV = running sum of signed volume; NaN volume: skipped in the sum, NaN at its own bar
    # (pandas cumsum). A z-score is shift-invariant, so history before the window cancels out.
    missing = np.isnan(signed)
    obv = np.cumsum(np.where(missing, 0.0, signed), axis=0)
    obv[missing] = np.nan
    mean, var = rolling_mean_var(obv, N, start=1)
    return safe_div(obv - mean, np.sqrt(var))


def dollar_volume(ctx: Context) -> np.ndarray:
    """Dollar volume close * volume, (T, N). Shared, do not mutate."""
    return ctx.memo("dollar_volume", lambda: ctx.field("close") * ctx.field("volume"))


def _amihud(ctx: Context, n: int) -> np.ndarray:
    abs_ret = np.abs(close_ratio(ctx, 1) - 1.0)
    abs_ret[0] = 0.0  # placeholder, masked by start=1
    traded = rolling_sum(dollar_volume(ctx), n, start=1)
    return safe_div(1e6 * rolling_sum(abs_ret, n, start=1), traded)


def _vp_corr(ctx: Context) -> np.ndarray:
    return rolling_corr(ctx.field("close"), log_volume(ctx), N)


def _vr_corr(ctx: Context) -> np.ndarray:
    lv = log_volume(ctx)
    dlv = lv - lag(lv, 1)
    dlv[0] = 0.0  # placeholder, masked by start=1
    return rolling_corr(log_returns(ctx), dlv, N, start=1)


def _vwap_dist(ctx: Context) -> np.ndarray:
    typical = (ctx.field("high") + ctx.field("low") + ctx.field("close")) / 3.0
    volume = ctx.field("volume")
    vwap = safe_div(rolling_sum(typical * volume, N), rolling_sum(volume, N))
    return ctx.field("close") / vwap - 1.0


def _dollar_volume_mean(ctx: Context) -> np.ndarray:
    return np.log1p(rolling_mean(dollar_volume(ctx), N))


def catalogue() -> list[Feature]:
    """The volume family, in catalogue order."""
    fam, v, cv = Family("volume"), ("volume",), ("close", "volume")
    for n in VOLUME_Z_WINDOWS:
        desc = f"z-score of ln(1 + volume) in its last {n} bars."
        fam.add(f"volume_z_{n}", n, v, desc, partial(_volume_z, n=n))
    desc = "volume / 20-bar mean volume."
    fam.add("volume_ratio_20", N, v, desc, partial(_volume_ratio, fast=1))
    desc = "5-bar / 20-bar mean volume."
    fam.add("volume_ratio_5_20", N, v, desc, partial(_volume_ratio, fast=5))
    desc = "20-bar OBV change / 20-bar volume, in [-1, 1]."
    fam.add("obv_slope_20", N + 1, cv, desc, _obv_slope)
    desc = "z-score of on-balance volume in its last 20 bars."
    fam.add("obv_z_20", N + 1, cv, desc, _obv_z)
    desc = "ln(1 + 20-bar mean of close * volume)."
    fam.add("dollar_volume_20", N, cv, desc, _dollar_volume_mean)
    for n in AMIHUD_WINDOWS:
        desc = f"Amihud illiquidity, {n} bars: 1e6 * sum|ret_1| / sum(close * volume)."
        fam.add(f"amihud_{n}", n + 1, cv, desc, partial(_amihud, n=n))
    desc = "20-bar correlation of close and ln(1 + volume)."
    fam.add("vp_corr_20", N, cv, desc, _vp_corr)
    desc = "20-bar correlation of log return and change in ln(1+v)."
    fam.add("vr_corr_20", N + 1, cv, desc, _vr_corr)
    desc = "close / 20-bar VWAP of the typical price - 1."
    fam.add("vwap_dist_20", N, ("high", "low", "close", "volume"), desc, _vwap_dist)
    return fam.features
