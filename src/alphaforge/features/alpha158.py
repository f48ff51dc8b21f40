"""Alpha158: Qlib's 158 price-volume factors, as a second catalogue on the packed layout.

The names and formulas are those of Qlib's Alpha158 (``Alpha158DL.get_feature_config`` with
its defaults; Yang et al. 2020, "Qlib: An AI-oriented Quantitative Investment Platform"),
the 1e-12 guards of its denominators included:

- 9 K-bar shapes of the current bar: ``KMID KLEN KMID2 KUP KUP2 KLOW KLOW2 KSFT KSFT2``;
- 4 prices over the close: ``OPEN0 HIGH0 LOW0 VWAP0``;
- 29 rolling operators over 5, 10, 20, 30 and 60 bars, named ``<OP><window>`` (``ROC5``,
  ``CORR20``): ``ROC MA STD BETA RSQR RESI MAX MIN QTLU QTLD RANK RSV IMAX IMIN IMXD CORR CORD
  CNTP CNTN CNTD SUMP SUMN SUMD VMA VSTD WVMA VSUMP VSUMN VSUMD`` (formulas in each
  ``FeatureSpec.description``).

Where our panels or our rules differ from Qlib's, and why:

- Prices: the panel's ``close`` with its ``open``, ``high``, ``low`` and ``volume``, never
  ``adj_close``. The formulas mix fields (``Max($high, d)/$close``, K-bar shapes), so all of
  them must share one price basis; Qlib's fields are all adjusted, ours are all as traded. A split
  shows as a jump, as in the default catalogue.
- ``VWAP0``: panels carry no VWAP column; the bar's typical price (high + low + close) / 3 stands
  in for it: VWAP0 = (high + low + close) / (3 close).
- Warm-up: Qlib rolls with ``min_periods=1``, so its first bars use partial windows. Here a value
  needs its whole window (pandas' default ``min_periods=n``): NaN on a symbol's first
  ``lookback - 1`` bars, where lookback is the window (+1 for operators of a one-bar change:
  ``ROC CORD CNTP CNTN CNTD SUMP SUMN SUMD WVMA VSUMP VSUMN VSUMD``). Windows count the symbol's
  own bars, as everywhere in ``alphaforge.features``.
- Missing inputs: a window that holds a NaN input gives NaN. A NaN volume (close-only panels)
  makes every volume feature NaN.
- Zero volume is used as is, with Qlib's guards: ``VMA`` and ``VSTD`` divide by volume + 1e-12,
  so on a zero-volume bar they are finite but huge (mean volume x 1e12; a robust normalisation
  clips them). In ``CORD`` the volume ratio after a zero-volume bar is undefined (Qlib's pandas
  drops the resulting inf as missing): NaN there, and NaN in every window holding it.
- Constant windows (halts, close-only panels): ``STD VSTD BETA RESI`` are 0; ``RSQR`` is NaN (no
  variance to explain); ``CORR`` and ``CORD`` are NaN when either series is constant in the
  window (Qlib: where a rolling std is within 2e-5 of 0, an absolute, scale-dependent threshold;
  here exactly constant); ``RANK`` is (n + 1) / 2n (ties share their mean rank); ``IMAX`` and
  ``IMIN`` point at the oldest bar (first occurrence, as numpy's argmax); ``RSV``, the
  ``SUM*`` ratios and the K-bar ratios over the range are 0 (the 1e-12 guards).

Every kernel works down a symbol's own bars only (``_rolling``), so a value never depends on
later bars or on other symbols; intermediates are memoised per block and shared by the windows
and operators that need them (and with the default catalogue where identical).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from alphaforge.features._core import Context, Family, Feature
from alphaforge.features._rolling import (
    lag,
    rolling_argext,
    rolling_corr,
    rolling_mean,
    rolling_mean_var,
    rolling_quantiles,
    rolling_rank_pct,
    rolling_slope,
    rolling_sum,
    safe_div,
)
from alphaforge.features.momentum import highest, lowest, sma
from alphaforge.features.volume import log_volume

WINDOWS = (5, 10, 20, 30, 60)
EPS = 1e-12  # Qlib's guard against a zero denominator
_OHLC = ("open", "high", "low", "close")
_C, _HLC, _CV = ("close",), ("high", "low", "close"), ("close", "volume")

Compute = Callable[[Context], np.ndarray]


# --------------------------------------------------------------------------- K-bar and price
def _body(ctx: Context) -> np.ndarray:
    """(T, N) close - open."""
    return ctx.memo("a158_body", lambda: ctx.field("close") - ctx.field("open"))


def _upper(ctx: Context) -> np.ndarray:
    """(T, N) upper shadow high - max(open, close)."""

    def compute() -> np.ndarray:
        return ctx.field("high") - np.maximum(ctx.field("open"), ctx.field("close"))

    return ctx.memo("a158_upper", compute)


def _lower(ctx: Context) -> np.ndarray:
    """(T, N) lower shadow min(open, close) - low."""

    def compute() -> np.ndarray:
        return np.minimum(ctx.field("open"), ctx.field("close")) - ctx.field("low")

    return ctx.memo("a158_lower", compute)


def _shift(ctx: Context) -> np.ndarray:
    """(T, N) 2 close - high - low: where the close sits in the bar, in price units."""

    def compute() -> np.ndarray:
        return 2.0 * ctx.field("close") - ctx.field("high") - ctx.field("low")

    return ctx.memo("a158_shift", compute)


def _bar_range(ctx: Context) -> np.ndarray:
    """(T, N) high - low + 1e-12."""
    return ctx.memo("a158_range", lambda: ctx.field("high") - ctx.field("low") + EPS)


# name stem -> (numerator, its formula, the fields it reads besides open); in Qlib's order
_KBAR_PARTS: dict[str, tuple[Compute, str, tuple[str, ...]]] = {
    "KMID": (_body, "close - open", ("close",)),
    "KUP": (_upper, "high - max(open, close)", ("high", "close")),
    "KLOW": (_lower, "min(open, close) - low", ("low", "close")),
    "KSFT": (_shift, "2 close - high - low", _HLC),
}


def _kbar(ctx: Context, part: Compute, over_range: bool) -> np.ndarray:
    return part(ctx) / (_bar_range(ctx) if over_range else ctx.field("open"))


def _klen(ctx: Context) -> np.ndarray:
    return (ctx.field("high") - ctx.field("low")) / ctx.field("open")


def _over_close(ctx: Context, field: str) -> np.ndarray:
    return ctx.field(field) / ctx.field("close")


def _vwap0(ctx: Context) -> np.ndarray:
    typical = ctx.field("high") + ctx.field("low") + ctx.field("close")
    return typical / (3.0 * ctx.field("close"))


def _kbar_catalogue() -> list[Feature]:
    """K-bar shapes and prices over the close, in Qlib's order."""
    fam = Family("alpha158_kbar")
    for stem, (part, formula, fields) in _KBAR_PARTS.items():
        desc = f"({formula}) / open."
        fam.add(stem, 1, ("open", *fields), desc, partial(_kbar, part=part, over_range=False))
        if stem == "KMID":  # Qlib's order: KMID, KLEN, KMID2, KUP, KUP2 ...
            fam.add("KLEN", 1, ("open", "high", "low"), "(high - low) / open.", _klen)
        desc = f"({formula}) / (high - low + 1e-12)."
        fam.add(f"{stem}2", 1, _OHLC, desc, partial(_kbar, part=part, over_range=True))
    price = Family("alpha158_price")
    for field in ("open", "high", "low"):
        desc = f"{field} / close."
        fields = (field, "close")
        price.add(f"{field.upper()}0", 1, fields, desc, partial(_over_close, field=field))
    desc = "Typical price / close: (high + low + close) / (3 close); stands in for VWAP / close."
    price.add("VWAP0", 1, _HLC, desc, _vwap0)
    return fam.features + price.features


# --------------------------------------------------------------------------- close-price operators
def _mean_var(ctx: Context, field: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing n-bar mean and variance (ddof=1) of a field. Shared, do not mutate."""
    return ctx.memo(("a158_mean_var", field, n), lambda: rolling_mean_var(ctx.field(field), n))


def _roc(ctx: Context, n: int) -> np.ndarray:
    close = ctx.field("close")
    return lag(close, n) / close


def _ma(ctx: Context, n: int) -> np.ndarray:
    return sma(ctx, n) / ctx.field("close")


def _std(ctx: Context, n: int) -> np.ndarray:
    return np.sqrt(_mean_var(ctx, "close", n)[1]) / ctx.field("close")


def _slope(ctx: Context, n: int) -> np.ndarray:
    """OLS slope of close on the bar number, price units per bar. Shared, do not mutate."""
    return ctx.memo(("a158_slope", n), lambda: rolling_slope(ctx.field("close"), n))


def _beta(ctx: Context, n: int) -> np.ndarray:
    return _slope(ctx, n) / ctx.field("close")


def _rsquare(ctx: Context, n: int) -> np.ndarray:
    # R^2 = slope^2 S_kk / S_yy, with S_kk = sum (k - mean k)^2 = n (n^2 - 1) / 12 and
    # S_yy = (n - 1) var; NaN for a constant window (its variance is exactly 0)
    s_kk = n * (n * n - 1.0) / 12.0
    slope = _slope(ctx, n)
    r2 = safe_div(slope * slope * s_kk, (n - 1.0) * _mean_var(ctx, "close", n)[1])
    return np.minimum(r2, 1.0)  # rounding may push a perfect fit a hair above 1


def _resi(ctx: Context, n: int) -> np.ndarray:
    # residual of the current bar (bar number n - 1, window mean (n - 1) / 2) from the fit
    close = ctx.field("close")
    fitted = _mean_var(ctx, "close", n)[0] + _slope(ctx, n) * ((n - 1) / 2.0)
    return (close - fitted) / close


def _max(ctx: Context, n: int) -> np.ndarray:
    return highest(ctx, n) / ctx.field("close")


def _min(ctx: Context, n: int) -> np.ndarray:
    return lowest(ctx, n) / ctx.field("close")


def _quantile(ctx: Context, n: int, which: int) -> np.ndarray:
    pair = ctx.memo(("a158_qtl", n), lambda: rolling_quantiles(ctx.field("close"), n, (0.8, 0.2)))
    return pair[which] / ctx.field("close")


def _rank(ctx: Context, n: int) -> np.ndarray:
    return rolling_rank_pct(ctx.field("close"), n)


def _rsv(ctx: Context, n: int) -> np.ndarray:
    lo = lowest(ctx, n)
    return (ctx.field("close") - lo) / (highest(ctx, n) - lo + EPS)


def _idx(ctx: Context, n: int, largest: bool) -> np.ndarray:
    """1-based position of the n-bar highest high / lowest low. Shared, do not mutate."""
    field = "high" if largest else "low"

    def compute() -> tuple[np.ndarray, ...]:  # every window at once: they share their blocks
        return rolling_argext(ctx.field(field), WINDOWS, largest=largest)

    return ctx.memo(("a158_idx", field), compute)[WINDOWS.index(n)]


def _imax(ctx: Context, n: int) -> np.ndarray:
    return _idx(ctx, n, True) / n


def _imin(ctx: Context, n: int) -> np.ndarray:
    return _idx(ctx, n, False) / n


def _imxd(ctx: Context, n: int) -> np.ndarray:
    return (_idx(ctx, n, True) - _idx(ctx, n, False)) / n


# --------------------------------------------------------------------------- one-bar changes
def _change(ctx: Context, field: str) -> np.ndarray:
    """(T, N) x_t - x_(t-1); row 0 a 0.0 placeholder (consumers pass start=1). Shared."""

    def compute() -> np.ndarray:
        x = ctx.field(field)
        out = x - lag(x, 1)
        out[0] = 0.0
        return out

    return ctx.memo(("a158_change", field), compute)


def _up_down(ctx: Context, field: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n-bar sums of the rises, of the falls, and of |change| + 1e-12. Shared, do not mutate."""

    def compute() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        move = _change(ctx, field)
        ups = rolling_sum(np.maximum(move, 0.0), n, start=1)
        downs = rolling_sum(np.maximum(-move, 0.0), n, start=1)
        total = rolling_sum(np.abs(move), n, start=1)
        total += EPS
        return ups, downs, total

    return ctx.memo(("a158_up_down", field, n), compute)


def _sum_ratio(ctx: Context, n: int, field: str, which: str) -> np.ndarray:
    ups, downs, total = _up_down(ctx, field, n)
    if which == "D":
        return (ups - downs) / total
    return (ups if which == "P" else downs) / total


def _share(ctx: Context, n: int, rising: bool) -> np.ndarray:
    """Share of the last n bars whose close rose (fell) from the bar before. Shared."""

    def compute() -> np.ndarray:
        move = _change(ctx, "close")
        # (T, N) 1.0 where the close rose (fell), else 0.0 (a flat bar counts in neither)
        moved = (move > 0.0) if rising else (move < 0.0)
        return rolling_mean(moved.astype(np.float64), n, start=1)

    return ctx.memo(("a158_share", rising, n), compute)


def _count(ctx: Context, n: int, which: str) -> np.ndarray:
    if which == "D":
        return _share(ctx, n, True) - _share(ctx, n, False)
    return _share(ctx, n, which == "P")


# --------------------------------------------------------------------------- price-volume
def _corr(ctx: Context, n: int) -> np.ndarray:
    return rolling_corr(ctx.field("close"), log_volume(ctx), n)


def _cord(ctx: Context, n: int) -> np.ndarray:
    def inputs() -> tuple[np.ndarray, np.ndarray]:
        close, volume = ctx.field("close"), ctx.field("volume")
        price_ratio = close / lag(close, 1)
        # ln(v_t / v_(t-1) + 1); NaN after a zero-volume bar (the ratio is undefined there)
        volume_ratio = np.log1p(safe_div(volume, lag(volume, 1)))
        price_ratio[0], volume_ratio[0] = 1.0, 0.0  # placeholders, masked by start=1
        return price_ratio, volume_ratio

    price_ratio, volume_ratio = ctx.memo("a158_cord_inputs", inputs)
    return rolling_corr(price_ratio, volume_ratio, n, start=1)


def _vma(ctx: Context, n: int) -> np.ndarray:
    return _mean_var(ctx, "volume", n)[0] / (ctx.field("volume") + EPS)


def _vstd(ctx: Context, n: int) -> np.ndarray:
    return np.sqrt(_mean_var(ctx, "volume", n)[1]) / (ctx.field("volume") + EPS)


def _wvma(ctx: Context, n: int) -> np.ndarray:
    def weighted() -> np.ndarray:
        close = ctx.field("close")
        # (T, N) |c_t / c_(t-1) - 1| * v_t: the bar's move weighted by its volume
        out = np.abs(close / lag(close, 1) - 1.0) * ctx.field("volume")
        out[0] = 0.0  # placeholder, masked by start=1
        return out

    mean, var = rolling_mean_var(ctx.memo("a158_wvm", weighted), n, start=1)
    return np.sqrt(var) / (mean + EPS)


# --------------------------------------------------------------------------- the catalogue
# operator -> (function of (ctx, n), extra bars before the window, fields read, formula with
# the window as {d}); in Qlib's order. ``Ref(x, k)`` is x k bars earlier.
_OPERATORS: dict[str, tuple[Callable[..., np.ndarray], int, tuple[str, ...], str]] = {
    "ROC": (_roc, 1, _C, "Ref($close, {d}) / $close."),
    "MA": (_ma, 0, _C, "Mean($close, {d}) / $close."),
    "STD": (_std, 0, _C, "Std($close, {d}) / $close (ddof=1)."),
    "BETA": (_beta, 0, _C, "Slope($close, {d}) / $close: OLS slope on the bar number."),
    "RSQR": (_rsquare, 0, _C, "Rsquare($close, {d}): R^2 of the linear fit on the bar number."),
    "RESI": (_resi, 0, _C, "Resi($close, {d}) / $close: the current bar's residual from the fit."),
    "MAX": (_max, 0, ("high", "close"), "Max($high, {d}) / $close."),
    "MIN": (_min, 0, ("low", "close"), "Min($low, {d}) / $close."),
    "QTLU": (partial(_quantile, which=0), 0, _C, "Quantile($close, {d}, 0.8) / $close."),
    "QTLD": (partial(_quantile, which=1), 0, _C, "Quantile($close, {d}, 0.2) / $close."),
    "RANK": (_rank, 0, _C, "Rank($close, {d}): percentile of the close in its window."),
    "RSV": (
        _rsv,
        0,
        _HLC,
        "($close - Min($low, {d})) / (Max($high, {d}) - Min($low, {d}) + 1e-12).",
    ),
    "IMAX": (_imax, 0, ("high",), "IdxMax($high, {d}) / {d}: 1-based, 1 = oldest bar."),
    "IMIN": (_imin, 0, ("low",), "IdxMin($low, {d}) / {d}: 1-based, 1 = oldest bar."),
    "IMXD": (_imxd, 0, ("high", "low"), "(IdxMax($high, {d}) - IdxMin($low, {d})) / {d}."),
    "CORR": (_corr, 0, _CV, "Corr($close, Log($volume + 1), {d})."),
    "CORD": (
        _cord,
        1,
        _CV,
        "Corr($close / Ref($close, 1), Log($volume / Ref($volume, 1) + 1), {d}).",
    ),
    "CNTP": (partial(_count, which="P"), 1, _C, "Mean($close > Ref($close, 1), {d})."),
    "CNTN": (partial(_count, which="N"), 1, _C, "Mean($close < Ref($close, 1), {d})."),
    "CNTD": (
        partial(_count, which="D"),
        1,
        _C,
        "CNTP{d} - CNTN{d}: Mean of the sign of the close's change, {d} bars.",
    ),
    "SUMP": (
        partial(_sum_ratio, field="close", which="P"),
        1,
        _C,
        "Sum(Greater($close - Ref($close, 1), 0), {d})"
        " / (Sum(Abs($close - Ref($close, 1)), {d}) + 1e-12).",
    ),
    "SUMN": (
        partial(_sum_ratio, field="close", which="N"),
        1,
        _C,
        "Sum(Greater(Ref($close, 1) - $close, 0), {d})"
        " / (Sum(Abs($close - Ref($close, 1)), {d}) + 1e-12).",
    ),
    "SUMD": (
        partial(_sum_ratio, field="close", which="D"),
        1,
        _C,
        "(Sum of rises - sum of falls of $close) / (Sum of |changes| + 1e-12), {d} bars.",
    ),
    "VMA": (_vma, 0, ("volume",), "Mean($volume, {d}) / ($volume + 1e-12)."),
    "VSTD": (_vstd, 0, ("volume",), "Std($volume, {d}) / ($volume + 1e-12) (ddof=1)."),
    "WVMA": (
        _wvma,
        1,
        _CV,
        "Std(x, {d}) / (Mean(x, {d}) + 1e-12), x = Abs($close / Ref($close, 1) - 1) * $volume.",
    ),
    "VSUMP": (
        partial(_sum_ratio, field="volume", which="P"),
        1,
        ("volume",),
        "Sum of volume rises / (Sum of |volume changes| + 1e-12), {d} bars.",
    ),
    "VSUMN": (
        partial(_sum_ratio, field="volume", which="N"),
        1,
        ("volume",),
        "Sum of volume falls / (Sum of |volume changes| + 1e-12), {d} bars.",
    ),
    "VSUMD": (
        partial(_sum_ratio, field="volume", which="D"),
        1,
        ("volume",),
        "(Sum of volume rises - falls) / (Sum of |volume changes| + 1e-12), {d} bars.",
    ),
}


def catalogue() -> list[Feature]:
    """The Alpha158 catalogue in Qlib's order: K-bar, price, then each operator by window."""
    rolling = Family("alpha158_rolling")
    for op, (fn, extra, fields, formula) in _OPERATORS.items():
        for n in WINDOWS:
            desc = formula.format(d=n)
            rolling.add(f"{op}{n}", n + extra, fields, desc, partial(fn, n=n))
    return _kbar_catalogue() + rolling.features
