"""Naive restatement of every feature: one symbol at a time, in plain pandas.

This is the definition the fast path (packed numpy kernels) is tested against, and the baseline
``benchmarks/features.py`` times. It is written to be obviously right, not fast:
``panel.groupby("symbol").apply(...)`` per feature, pandas ``rolling(n)`` per symbol, and
``rolling(n).apply`` with a Python function where pandas has no built-in (windowed EMA, mean
absolute deviation, regression slope, residual and R^2, arg-max). Never used by ``build_features``.

``REFERENCE`` restates the default catalogue, ``REFERENCE_ALPHA158`` the Alpha158 one, each
formula as Qlib writes it (``Ref(x, k)`` = ``x.shift(k)``, ``Greater`` = elementwise max) with
pandas' full-window ``rolling(n)`` (see ``alpha158`` for the NaN rules).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from alphaforge.features import DEFAULT_CS_FEATURES, catalogue_features
from alphaforge.features._rolling import ema_window

__all__ = ["reference_features", "REFERENCE", "REFERENCE_ALPHA158"]

Bars = pd.DataFrame  # one symbol's bars, indexed by timestamp
_LN2 = np.log(2.0)
Table = dict[str, Callable[[Bars], pd.Series]]  # feature name -> naive function


def _logret(df: Bars) -> pd.Series:
    return np.log(df.close / df.close.shift(1))


def _nonzero(num: pd.Series, den: pd.Series) -> pd.Series:
    """Return num / den, NaN where den == 0."""
    return (num / den).where(den != 0)


def _zscore(x: pd.Series, n: int) -> pd.Series:
    roll = x.rolling(n)
    return _nonzero(x - roll.mean(), roll.std())


def _ema(x: pd.Series, span: int) -> pd.Series:
    window = ema_window(span)
    w = 1.0 - 2.0 / (span + 1.0)
    weights = w ** np.arange(window)[::-1]  # oldest bar first, as rolling hands it over
    weights /= weights.sum()
    return x.rolling(window).apply(lambda a: float(np.dot(weights, a)), raw=True)


def _slope(x: pd.Series, n: int) -> pd.Series:
    k = np.arange(n) - (n - 1) / 2.0
    return x.rolling(n).apply(lambda a: float(np.dot(k, a) / np.dot(k, k)), raw=True)


def _stoch(df: Bars, n: int) -> pd.Series:
    hh, ll = df.high.rolling(n).max(), df.low.rolling(n).min()
    return _nonzero(df.close - ll, hh - ll)


def _true_range(df: Bars) -> pd.Series:
    prev = df.close.shift(1)
    return np.maximum(df.high, prev) - np.minimum(df.low, prev)  # NaN on the first bar


def _corr(x: pd.Series, y: pd.Series, n: int) -> pd.Series:
    ok = (x.rolling(n).std() > 0) & (y.rolling(n).std() > 0)
    return x.rolling(n).corr(y).where(ok)


def _macd_line(df: Bars) -> pd.Series:
    return (_ema(df.close, 12) - _ema(df.close, 26)) / df.close


def _rsi(df: Bars, n: int) -> pd.Series:
    move = df.close.diff()
    gains = move.clip(lower=0).rolling(n).sum()
    losses = (-move).clip(lower=0).rolling(n).sum()
    rsi = gains / (gains + losses)
    return rsi.mask((gains + losses) == 0, 0.5)


def _cci(df: Bars) -> pd.Series:
    tp = (df.high + df.low + df.close) / 3.0
    mean = tp.rolling(20).mean()
    mad = tp.rolling(20).apply(lambda a: float(np.abs(a - a.mean()).mean()), raw=True)
    mad = mad.mask(mad <= 1e-12 * mean.abs(), 0.0)
    return _nonzero(tp - mean, 0.015 * mad)


def _bollinger(df: Bars, width: bool) -> pd.Series:
    mean, sd = df.close.rolling(20).mean(), df.close.rolling(20).std(ddof=0)
    if width:
        return 4.0 * sd / mean
    return _nonzero(df.close - (mean - 2.0 * sd), 4.0 * sd)


def _obv_z(df: Bars) -> pd.Series:
    obv = (np.sign(df.close.diff()) * df.volume).cumsum()
    return _zscore(obv, 20)


def _minutes_since_open(df: Bars) -> pd.Series:
    ts = pd.Series(df.index, index=df.index)
    first = ts.groupby(ts.dt.normalize().to_numpy()).transform("min")
    return (ts - first) / pd.Timedelta(minutes=1)


def _calendar(df: Bars, what: str) -> pd.Series:
    ts = df.index
    minutes = ts.hour * 60.0 + ts.minute + ts.second / 60.0
    phase = {
        "dow": ts.day_of_week / 7.0,
        "month": (ts.month - 1) / 12.0,
        "tod": minutes / 1440.0,
    }
    if what == "day_of_month":
        values = (ts.day - 1.0) / (ts.days_in_month - 1.0)
    else:
        unit, trig = what.split("_")
        values = (np.sin if trig == "sin" else np.cos)(2 * np.pi * phase[unit])
    return pd.Series(np.asarray(values, dtype=float), index=ts)


def _range_vol(df: Bars, n: int, estimator: str) -> pd.Series:
    h, lo, o, c = df.high, df.low, df.open, df.close
    if estimator == "parkinson":
        per_bar = np.log(h / lo) ** 2 / (4 * _LN2)
    elif estimator == "garman_klass":
        per_bar = 0.5 * np.log(h / lo) ** 2 - (2 * _LN2 - 1) * np.log(c / o) ** 2
    else:
        per_bar = np.log(h / c) * np.log(h / o) + np.log(lo / c) * np.log(lo / o)
    return np.sqrt(per_bar.rolling(n).mean().clip(lower=0))


def _returns_table() -> Table:
    """Naive returns family, in catalogue order."""
    t: Table = {}
    for k in (1, 2, 3, 5, 10, 20, 60, 120, 250):
        t[f"ret_{k}"] = lambda df, k=k: df.close / df.close.shift(k) - 1
    for k in (1, 5, 20, 60):
        t[f"logret_{k}"] = lambda df, k=k: np.log(df.close / df.close.shift(k))
    t["gap"] = lambda df: df.open / df.close.shift(1) - 1
    t["intraday_ret"] = lambda df: df.close / df.open - 1
    t["hl_range"] = lambda df: np.log(df.high / df.low)
    t["close_loc"] = lambda df: _nonzero(df.close - df.low, df.high - df.low)
    return t


def _volatility_table() -> Table:
    """Naive volatility family, in catalogue order."""
    t: Table = {}
    for n in (5, 10, 20, 60, 120):
        t[f"rv_{n}"] = lambda df, n=n: _logret(df).rolling(n).std()
    for est in ("parkinson", "garman_klass", "rogers_satchell"):
        for n in (20, 60):
            t[f"{est}_{n}"] = lambda df, n=n, est=est: _range_vol(df, n, est)
    t["atr_14"] = lambda df: _true_range(df).rolling(14).mean()
    t["natr_14"] = lambda df: _true_range(df).rolling(14).mean() / df.close
    t["natr_28"] = lambda df: _true_range(df).rolling(28).mean() / df.close
    for n in (20, 60):
        t[f"downside_vol_{n}"] = lambda df, n=n: np.sqrt(
            (np.minimum(_logret(df), 0.0) ** 2).rolling(n).mean()
        )
    t["vol_of_vol_20"] = lambda df: _logret(df).rolling(10).std().rolling(20).std()
    for n in (20, 60):
        t[f"skew_{n}"] = lambda df, n=n: (
            _logret(df).rolling(n).skew().where(_logret(df).rolling(n).std() > 0)
        )
    for n in (20, 60):
        t[f"kurt_{n}"] = lambda df, n=n: (
            _logret(df).rolling(n).kurt().where(_logret(df).rolling(n).std() > 0)
        )
    t["rv_ratio_5_60"] = lambda df: _nonzero(
        _logret(df).rolling(5).std(), _logret(df).rolling(60).std()
    )
    return t


def _momentum_table() -> Table:
    """Naive momentum family, in catalogue order."""
    t: Table = {}
    for name, h in (("mom_3_1", 63), ("mom_6_1", 126), ("mom_12_1", 252)):
        t[name] = lambda df, h=h: df.close.shift(21) / df.close.shift(h) - 1
    for n in (5, 10, 20, 50, 100, 200):
        t[f"sma_dist_{n}"] = lambda df, n=n: df.close / df.close.rolling(n).mean() - 1
    for n in (5, 10, 20, 50, 100, 200):
        t[f"ema_dist_{n}"] = lambda df, n=n: df.close / _ema(df.close, n) - 1
    for f, s in ((5, 20), (20, 50), (50, 200)):
        t[f"ma_cross_{f}_{s}"] = lambda df, f=f, s=s: (
            df.close.rolling(f).mean() / df.close.rolling(s).mean() - 1
        )
    for n in (20, 60, 250):
        t[f"dist_high_{n}"] = lambda df, n=n: df.close / df.high.rolling(n).max() - 1
    for n in (20, 60, 250):
        t[f"dist_low_{n}"] = lambda df, n=n: df.close / df.low.rolling(n).min() - 1
    for n in (20, 60):
        t[f"donchian_{n}"] = lambda df, n=n: _stoch(df, n)
    for n in (20, 60):
        t[f"linreg_slope_{n}"] = lambda df, n=n: _slope(np.log(df.close), n)
    return t


def _oscillators_table() -> Table:
    """Naive oscillators family, in catalogue order."""
    t: Table = {}
    for n in (6, 14, 28):
        t[f"rsi_{n}"] = lambda df, n=n: _rsi(df, n)
    t["stoch_k_14"] = lambda df: _stoch(df, 14)
    t["stoch_d_14"] = lambda df: _stoch(df, 14).rolling(3).mean()
    t["williams_r_14"] = lambda df: _stoch(df, 14) - 1
    t["macd"] = _macd_line
    t["macd_signal"] = lambda df: _ema(_macd_line(df), 9)
    t["macd_hist"] = lambda df: _macd_line(df) - _ema(_macd_line(df), 9)
    t["bb_pctb_20"] = lambda df: _bollinger(df, width=False)
    t["bb_width_20"] = lambda df: _bollinger(df, width=True)
    t["cci_20"] = _cci
    return t


def _volume_table() -> Table:
    """Naive volume family, in catalogue order."""
    t: Table = {}
    for n in (5, 20, 60):
        t[f"volume_z_{n}"] = lambda df, n=n: _zscore(np.log1p(df.volume), n)
    t["volume_ratio_20"] = lambda df: _nonzero(df.volume, df.volume.rolling(20).mean())
    t["volume_ratio_5_20"] = lambda df: _nonzero(
        df.volume.rolling(5).mean(), df.volume.rolling(20).mean()
    )
    t["obv_slope_20"] = lambda df: _nonzero(
        (np.sign(df.close.diff()) * df.volume).rolling(20).sum(), df.volume.rolling(20).sum()
    )
    t["obv_z_20"] = _obv_z
    t["dollar_volume_20"] = lambda df: np.log1p((df.close * df.volume).rolling(20).mean())
    for n in (20, 60):
        t[f"amihud_{n}"] = lambda df, n=n: _nonzero(
            1e6 * (df.close / df.close.shift(1) - 1).abs().rolling(n).sum(),
            (df.close * df.volume).rolling(n).sum(),
        )
    t["vp_corr_20"] = lambda df: _corr(df.close, np.log1p(df.volume), 20)
    t["vr_corr_20"] = lambda df: _corr(_logret(df), np.log1p(df.volume).diff(), 20)
    t["vwap_dist_20"] = lambda df: (
        df.close
        / _nonzero(
            ((df.high + df.low + df.close) / 3 * df.volume).rolling(20).sum(),
            df.volume.rolling(20).sum(),
        )
        - 1
    )
    return t


def _calendar_table() -> Table:
    """Naive calendar family, in catalogue order."""
    t: Table = {}
    for what in ("dow_sin", "dow_cos", "month_sin", "month_cos", "day_of_month"):
        t[what] = lambda df, what=what: _calendar(df, what)
    for what in ("tod_sin", "tod_cos"):
        t[what] = lambda df, what=what: _calendar(df, what)
    t["minutes_since_open"] = _minutes_since_open
    return t


def _build_table() -> Table:
    """The reference of every feature, family by family in catalogue order."""
    tables = (
        _returns_table,
        _volatility_table,
        _momentum_table,
        _oscillators_table,
        _volume_table,
        _calendar_table,
    )
    return {name: fn for table in tables for name, fn in table().items()}


#: feature name -> naive function of one symbol's bars (indexed by timestamp) -> Series.
REFERENCE: Table = _build_table()


# --------------------------------------------------------------------------- Alpha158
_EPS = 1e-12  # Qlib's guard against a zero denominator
_A158_WINDOWS = (5, 10, 20, 30, 60)


def _kbar_table() -> Table:
    """Naive K-bar and price features, in Qlib's order."""
    t: Table = {}
    rng = lambda df: df.high - df.low + _EPS  # noqa: E731
    top = lambda df: df.high - np.maximum(df.open, df.close)  # noqa: E731
    bottom = lambda df: np.minimum(df.open, df.close) - df.low  # noqa: E731
    t["KMID"] = lambda df: (df.close - df.open) / df.open
    t["KLEN"] = lambda df: (df.high - df.low) / df.open
    t["KMID2"] = lambda df: (df.close - df.open) / rng(df)
    t["KUP"] = lambda df: top(df) / df.open
    t["KUP2"] = lambda df: top(df) / rng(df)
    t["KLOW"] = lambda df: bottom(df) / df.open
    t["KLOW2"] = lambda df: bottom(df) / rng(df)
    t["KSFT"] = lambda df: (2 * df.close - df.high - df.low) / df.open
    t["KSFT2"] = lambda df: (2 * df.close - df.high - df.low) / rng(df)
    for field in ("open", "high", "low"):
        t[f"{field.upper()}0"] = lambda df, field=field: df[field] / df.close
    t["VWAP0"] = lambda df: (df.high + df.low + df.close) / 3 / df.close
    return t


def _last_residual(a: np.ndarray) -> float:
    """Residual of the window's last value from its OLS line on x = 1..n (Qlib's Resi)."""
    x = np.arange(1.0, len(a) + 1.0)
    return float(a[-1] - np.polyval(np.polyfit(x, a, 1), x[-1]))


def _rsquare(a: np.ndarray) -> float:
    """R^2 of the OLS line of the window on its bar number; NaN for a constant window."""
    if a.max() == a.min():
        return np.nan
    k, y = np.arange(len(a)) - (len(a) - 1) / 2.0, a - a.mean()
    return float(np.dot(k, y) ** 2 / (np.dot(k, k) * np.dot(y, y)))


def _rise_fall(x: pd.Series, n: int, which: str) -> pd.Series:
    """Qlib's SUMP / SUMN / SUMD of x over n bars."""
    move = x - x.shift(1)
    ups = np.maximum(move, 0).rolling(n).sum()
    downs = np.maximum(-move, 0).rolling(n).sum()
    num = {"P": ups, "N": downs, "D": ups - downs}[which]
    return num / (move.abs().rolling(n).sum() + _EPS)


def _share_moving(df: Bars, n: int, up: bool) -> pd.Series:
    prev = df.close.shift(1)
    moved = (df.close > prev) if up else (df.close < prev)
    return moved.astype(float).where(prev.notna()).rolling(n).mean()


def _cord(df: Bars, n: int) -> pd.Series:
    volume_ratio = np.log(df.volume / df.volume.shift(1) + 1).replace(np.inf, np.nan)
    return _corr(df.close / df.close.shift(1), volume_ratio, n)


def _wvma(df: Bars, n: int) -> pd.Series:
    x = (df.close / df.close.shift(1) - 1).abs() * df.volume
    return x.rolling(n).std() / (x.rolling(n).mean() + _EPS)


def _rolling_ops(n: int) -> Table:
    """Naive Alpha158 rolling operators of one window n, operator by operator."""
    arg = lambda x, best: x.rolling(n).apply(lambda a: best(a) + 1, raw=True)  # noqa: E731
    lo = lambda df: df.low.rolling(n).min()  # noqa: E731
    return {
        "ROC": lambda df: df.close.shift(n) / df.close,
        "MA": lambda df: df.close.rolling(n).mean() / df.close,
        "STD": lambda df: df.close.rolling(n).std() / df.close,
        "BETA": lambda df: _slope(df.close, n) / df.close,
        "RSQR": lambda df: df.close.rolling(n).apply(_rsquare, raw=True),
        "RESI": lambda df: df.close.rolling(n).apply(_last_residual, raw=True) / df.close,
        "MAX": lambda df: df.high.rolling(n).max() / df.close,
        "MIN": lambda df: lo(df) / df.close,
        "QTLU": lambda df: df.close.rolling(n).quantile(0.8) / df.close,
        "QTLD": lambda df: df.close.rolling(n).quantile(0.2) / df.close,
        "RANK": lambda df: df.close.rolling(n).rank(pct=True),
        "RSV": lambda df: (df.close - lo(df)) / (df.high.rolling(n).max() - lo(df) + _EPS),
        "IMAX": lambda df: arg(df.high, np.argmax) / n,
        "IMIN": lambda df: arg(df.low, np.argmin) / n,
        "IMXD": lambda df: (arg(df.high, np.argmax) - arg(df.low, np.argmin)) / n,
        "CORR": lambda df: _corr(df.close, np.log(df.volume + 1), n),
        "CORD": lambda df: _cord(df, n),
        "CNTP": lambda df: _share_moving(df, n, True),
        "CNTN": lambda df: _share_moving(df, n, False),
        "CNTD": lambda df: _share_moving(df, n, True) - _share_moving(df, n, False),
        "SUMP": lambda df: _rise_fall(df.close, n, "P"),
        "SUMN": lambda df: _rise_fall(df.close, n, "N"),
        "SUMD": lambda df: _rise_fall(df.close, n, "D"),
        "VMA": lambda df: df.volume.rolling(n).mean() / (df.volume + _EPS),
        "VSTD": lambda df: df.volume.rolling(n).std() / (df.volume + _EPS),
        "WVMA": lambda df: _wvma(df, n),
        "VSUMP": lambda df: _rise_fall(df.volume, n, "P"),
        "VSUMN": lambda df: _rise_fall(df.volume, n, "N"),
        "VSUMD": lambda df: _rise_fall(df.volume, n, "D"),
    }


def _alpha158_table() -> Table:
    """The reference of every Alpha158 factor, in Qlib's order (operator, then window)."""
    t = _kbar_table()
    by_window = {n: _rolling_ops(n) for n in _A158_WINDOWS}
    for op in by_window[_A158_WINDOWS[0]]:
        for n in _A158_WINDOWS:
            t[f"{op}{n}"] = by_window[n][op]
    return t


#: Alpha158 factor name -> naive function of one symbol's bars -> Series.
REFERENCE_ALPHA158: Table = _alpha158_table()
_ALL: Table = {**REFERENCE, **REFERENCE_ALPHA158}


def _per_symbol(panel: pd.DataFrame, fn: Callable[[Bars], pd.Series]) -> pd.Series:
    """Apply fn to each symbol's bars separately and realign to the panel's index."""
    parts = []
    for symbol, bars in panel.groupby(level="symbol", sort=False):
        bars = bars.droplevel("symbol")
        if "volume" not in bars.columns:
            bars = bars.assign(volume=np.nan)
        index = pd.MultiIndex.from_arrays(
            [bars.index, [symbol] * len(bars)], names=["timestamp", "symbol"]
        )
        parts.append(pd.Series(np.asarray(fn(bars), dtype=float), index=index))
    return pd.concat(parts).reindex(panel.index)


def _cross_section(x: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Per-timestamp percentile rank and z-score of one feature (NaNs left out)."""
    g = x.groupby(level="timestamp")
    n = g.transform("count")
    rank = ((g.rank(method="average") - 1) / (n - 1)).where(n > 1, 0.5).where(x.notna())
    flat = g.transform("max") == g.transform("min")
    z = ((x - g.transform("mean")) / g.transform("std")).where(~flat & (n > 1))
    return rank, z


def reference_features(
    panel: pd.DataFrame,
    names: Sequence[str] | None = None,
    *,
    cross_section: bool = True,
    cs_features: Sequence[str] | None = None,
    catalogue: str = "default",
) -> pd.DataFrame:
    """Slow, obviously-correct twin of ``build_features`` (same arguments, same columns)."""
    base = catalogue_features(catalogue) if names is None else list(names)
    if not cross_section:
        cs: list[str] = []
    elif cs_features is None:
        cs = [n for n in DEFAULT_CS_FEATURES if n in base]
    else:
        cs = list(cs_features)
    values = {n: _per_symbol(panel, _ALL[n]) for n in dict.fromkeys(base + cs)}
    out = pd.DataFrame({n: values[n] for n in base}, index=panel.index)
    stages = {n: _cross_section(values[n]) for n in cs}
    for n in cs:
        out[f"cs_rank_{n}"] = stages[n][0]
    for n in cs:
        out[f"cs_z_{n}"] = stages[n][1]
    return out
