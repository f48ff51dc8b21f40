"""Return features.

Simple and log returns over several horizons, overnight gap, intraday return,
high-low range and close location. All backward-looking ratios of the symbol's own bars.

Also the shared return series other families build on (`close_ratio`, `log_returns`).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from alphaforge.features._core import Context, Family, Feature
from alphaforge.features._rolling import lag, safe_div

RET_HORIZONS = (1, 2, 3, 5, 10, 20, 60, 120, 250)
LOGRET_HORIZONS = (1, 5, 20, 60)


def close_ratio(ctx: Context, k: int) -> np.ndarray:
    """close_t / close_(t-k), (T, N); NaN on the first k bars. Shared, do not mutate."""

    def compute() -> np.ndarray:
        close = ctx.field("close")
        return close / lag(close, k)

    return ctx.memo(("close_ratio", k), compute)


def log_returns(ctx: Context) -> np.ndarray:
    """One-bar log returns log(close_t / close_(t-1)), (T, N). Shared, do not mutate.

    Row 0 holds a 0.0 placeholder (not NaN) so rolling kernels stay on their fast path: every
    consumer must pass ``start=1`` to them, which masks the windows that include it.
    """

    def compute() -> np.ndarray:
        close = ctx.field("close")
        out = np.empty_like(close)
        out[0] = 0.0
        np.log(close[1:] / close[:-1], out=out[1:])
        return out

    return ctx.memo("log_returns", compute)


def _simple_return(ctx: Context, k: int) -> np.ndarray:
    return close_ratio(ctx, k) - 1.0


def _log_return(ctx: Context, k: int) -> np.ndarray:
    if k == 1:
        out = log_returns(ctx).copy()
        out[0] = np.nan  # the placeholder is no value
        return out
    return np.log(close_ratio(ctx, k))


def _gap(ctx: Context) -> np.ndarray:
    # (T, N) open_t / close_(t-1) - 1: the overnight (between-bar) move
    return ctx.field("open") / lag(ctx.field("close"), 1) - 1.0


def _intraday(ctx: Context) -> np.ndarray:
    return ctx.field("close") / ctx.field("open") - 1.0


def _hl_range(ctx: Context) -> np.ndarray:
    return np.log(ctx.field("high") / ctx.field("low"))


def _close_loc(ctx: Context) -> np.ndarray:
    low = ctx.field("low")
    # where in the bar's range the close sits; NaN for a flat bar (close-only panels)
    return safe_div(ctx.field("close") - low, ctx.field("high") - low)


def catalogue() -> list[Feature]:
    """The return family, in catalogue order."""
    fam, c = Family("returns"), ("close",)
    for k in RET_HORIZONS:
        desc = f"Simple return over {k} bars: c_t/c_(t-{k}) - 1."
        fam.add(f"ret_{k}", k + 1, c, desc, partial(_simple_return, k=k))
    for k in LOGRET_HORIZONS:
        desc = f"Log return over {k} bars: ln(c_t/c_(t-{k}))."
        fam.add(f"logret_{k}", k + 1, c, desc, partial(_log_return, k=k))
    fam.add("gap", 2, ("open", "close"), "Overnight gap: open_t / close_(t-1) - 1.", _gap)
    desc = "Intrabar return: close / open - 1."
    fam.add("intraday_ret", 1, ("open", "close"), desc, _intraday)
    fam.add("hl_range", 1, ("high", "low"), "Bar range: ln(high / low).", _hl_range)
    desc = "Close location in the bar: (close - low) / (high - low); NaN if high == low."
    fam.add("close_loc", 1, ("high", "low", "close"), desc, _close_loc)
    return fam.features
