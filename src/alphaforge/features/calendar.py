"""Calendar features from the bar's own timestamp.

In the timestamps' time zone (UTC for tz-aware crypto bars): day of week and month as points on
a circle (sin/cos, so December sits next to January), fraction of the month elapsed, time of day
on a circle, and minutes since the symbol's first bar of that calendar day (the session open).
On daily bars the intraday features are constant (time of day) or 0 (minutes since open).

They read no price: ``fields`` is empty and the lookback is 1 bar (the session-open feature also
reads the timestamps of the symbol's earlier bars that day).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from alphaforge.errors import DataError
from alphaforge.features._core import Context, Family, Feature

_TWO_PI = 2.0 * np.pi


def _timestamps(ctx: Context) -> pd.DatetimeIndex:
    ts = ctx.layout.timestamps
    if not isinstance(ts, pd.DatetimeIndex):
        raise DataError(
            f"calendar features need datetime timestamps, got {ts.dtype} (use names= to skip them)"
        )
    return ts


def _cycle(ctx: Context, unit: str, trig: str) -> np.ndarray:
    values = ctx.per_panel(("cycle", unit, trig), lambda: _cycle_values(ctx, unit, trig))
    return ctx.per_timestamp(values)


def _cycle_values(ctx: Context, unit: str, trig: str) -> np.ndarray:
    """(n_timestamps,) sin or cos of the phase of each distinct timestamp."""
    ts = _timestamps(ctx)
    if unit == "dow":
        phase = ts.day_of_week.to_numpy() / 7.0
    elif unit == "month":
        phase = (ts.month.to_numpy() - 1) / 12.0
    else:  # time of day, in minutes
        minutes = ts.hour.to_numpy() * 60.0 + ts.minute.to_numpy() + ts.second.to_numpy() / 60.0
        phase = minutes / 1440.0
    fn = np.sin if trig == "sin" else np.cos
    return fn(_TWO_PI * phase)


def _day_of_month(ctx: Context) -> np.ndarray:
    def compute() -> np.ndarray:
        ts = _timestamps(ctx)
        return (ts.day.to_numpy() - 1.0) / (ts.days_in_month.to_numpy() - 1.0)

    return ctx.per_timestamp(ctx.per_panel("day_of_month", compute))


def _minutes_since_open(ctx: Context) -> np.ndarray:
    def per_ts() -> np.ndarray:
        # (2, n_timestamps): minutes since the first timestamp, calendar day code
        ts = _timestamps(ctx)
        minutes = np.asarray((ts - ts[0]) / pd.Timedelta(minutes=1), dtype=np.float64)
        return np.stack([minutes, pd.factorize(ts.normalize())[0].astype(np.float64)])

    minutes_ts, day_ts = ctx.per_panel("minutes_day", per_ts)
    minutes, day = ctx.per_timestamp(minutes_ts), ctx.per_timestamp(day_ts)  # (T, N) each
    rows = np.arange(ctx.shape[0])[:, None]
    new_day = np.ones(day.shape, dtype=bool)
    new_day[1:] = day[1:] != day[:-1]
    # (T, N) row of the symbol's first bar of the current day: a running max, backward only
    first = np.maximum.accumulate(np.where(new_day, rows, 0), axis=0)
    return minutes - np.take_along_axis(minutes, first, axis=0)


def catalogue() -> list[Feature]:
    """The calendar family, in catalogue order."""
    fam = Family("calendar")
    for unit, label in (("dow", "day of week"), ("month", "month of year")):
        for trig in ("sin", "cos"):
            desc = f"{trig}(2 pi {label} phase)."
            fam.add(f"{unit}_{trig}", 1, (), desc, partial(_cycle, unit=unit, trig=trig))
    desc = "Fraction of the month elapsed: (day-1)/(days-1)."
    fam.add("day_of_month", 1, (), desc, _day_of_month)
    for trig in ("sin", "cos"):
        desc = f"{trig}(2 pi time of day / 24 h); constant on daily bars."
        fam.add(f"tod_{trig}", 1, (), desc, partial(_cycle, unit="tod", trig=trig))
    desc = "Minutes since the symbol's first bar that day; 0 daily."
    fam.add("minutes_since_open", 1, (), desc, _minutes_since_open)
    return fam.features
