"""Small hand-made panels for the feature tests (built here, independent of alphaforge.data).

The daily panel is deliberately awkward: symbols start and end at different dates, one has
scattered missing bars (halts) and a 5-bar hole, one has a zero-volume bar, one a 2:1 split-like
drop, one trades at ~60,000 (BTC-like levels stress rolling-variance cancellation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

N_BARS = 420  # > max lookback (253), so every feature is defined on the long symbols


def _bars(rng: np.random.Generator, n: int, level: float, vol: float = 0.02) -> pd.DataFrame:
    """Random-walk OHLCV bars for one symbol: (n, 5) with high >= max(open, close) etc."""
    close = level * np.exp(np.cumsum(vol * rng.standard_normal(n)))
    prev = np.concatenate([[close[0]], close[:-1]])
    open_ = prev * np.exp(0.3 * vol * rng.standard_normal(n))
    high = np.maximum(open_, close) * np.exp(0.5 * vol * np.abs(rng.standard_normal(n)))
    low = np.minimum(open_, close) * np.exp(-0.5 * vol * np.abs(rng.standard_normal(n)))
    volume = np.round(rng.lognormal(13, 0.6, n))
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume})


def to_panel(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """{symbol: bars indexed by timestamp} -> sorted Panel with (timestamp, symbol) index."""
    long = pd.concat(frames, names=["symbol", "timestamp"]).swaplevel().sort_index()
    return long.astype(np.float64)


def make_panel(seed: int = 0, n_bars: int = N_BARS) -> pd.DataFrame:
    """Unbalanced daily panel of 6 symbols with gaps, a zero-volume bar and a split-like jump."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-05", periods=n_bars)
    frames = {}
    spans = {
        "AAA": (0, n_bars),
        "BBB": (25, n_bars),
        "CCC": (0, n_bars - 40),
        "DDD": (60, n_bars),
        "EEE": (0, n_bars),
        "FFF": (3, n_bars),
    }
    levels = {"AAA": 50.0, "BBB": 120.0, "CCC": 8.0, "DDD": 300.0, "EEE": 60_000.0, "FFF": 25.0}
    for sym, (a, b) in spans.items():
        bars = _bars(rng, b - a, levels[sym])
        bars.index = dates[a:b]
        frames[sym] = bars
    # halts: scattered missing bars and a 5-bar hole in AAA
    aaa = frames["AAA"]
    drop = rng.choice(len(aaa), size=12, replace=False)
    keep = np.ones(len(aaa), dtype=bool)
    keep[drop] = False
    keep[200:205] = False
    frames["AAA"] = aaa[keep]
    # a zero-volume bar (and a short run of them) in BBB
    frames["BBB"].iloc[[50, 300, 301, 302], frames["BBB"].columns.get_loc("volume")] = 0.0
    # 2:1 split-like drop in FFF from bar 250 on (prices halve, volume doubles)
    fff = frames["FFF"]
    fff.iloc[250:, :4] /= 2.0
    fff.iloc[250:, 4] *= 2.0
    return to_panel(frames)


def make_intraday_panel(seed: int = 1, days: int = 8) -> pd.DataFrame:
    """15-minute bars, tz-aware UTC, two crypto symbols; ETH starts later and misses bars."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2024-03-01", periods=days * 96, freq="15min", tz="UTC")
    btc = _bars(rng, len(stamps), 60_000.0, vol=0.003)
    btc.index = stamps
    eth = _bars(rng, len(stamps) - 50, 3_000.0, vol=0.004)
    eth.index = stamps[50:]
    eth = eth.drop(eth.index[[10, 11, 300, 500]])
    return to_panel({"BTC": btc, "ETH": eth})


def make_close_only_panel(seed: int = 2) -> pd.DataFrame:
    """Close-only panel: open = high = low = close, volume all NaN, ``attrs["close_only"]``."""
    panel = make_panel(seed)
    close = panel["close"]
    panel = panel.assign(open=close, high=close, low=close, volume=np.nan)
    panel.attrs["close_only"] = True
    return panel


def perturb_rows(panel: pd.DataFrame, mask: np.ndarray, seed: int) -> pd.DataFrame:
    """Scramble the bars where ``mask`` holds, keeping each bar valid (high >= open, close ...).

    Each masked bar gets a new close (times a random factor in [0.5, 2]), new open/high/low around
    it and a new volume (sometimes zero).
    """
    rng = np.random.default_rng(seed)
    out = panel.copy()
    k = int(mask.sum())
    close = panel["close"].to_numpy()[mask] * np.exp(rng.uniform(-0.7, 0.7, k))
    open_ = close * np.exp(0.05 * rng.standard_normal(k))
    high = np.maximum(open_, close) * np.exp(0.05 * np.abs(rng.standard_normal(k)))
    low = np.minimum(open_, close) * np.exp(-0.05 * np.abs(rng.standard_normal(k)))
    volume = np.where(rng.random(k) < 0.1, 0.0, np.round(rng.lognormal(12, 1.0, k)))
    for name, values in (("open", open_), ("high", high), ("low", low), ("close", close)):
        out.loc[mask, name] = values
    if "volume" in out and not out["volume"].isna().all():
        out.loc[mask, "volume"] = volume
    return out


@pytest.fixture(scope="session")
def panel() -> pd.DataFrame:
    return make_panel()


@pytest.fixture(scope="session")
def intraday_panel() -> pd.DataFrame:
    return make_intraday_panel()


@pytest.fixture(scope="session")
def close_only_panel() -> pd.DataFrame:
    return make_close_only_panel()


@pytest.fixture(scope="session")
def panel_factory():
    """make_panel(seed, n_bars) for tests that need a fresh or different panel."""
    return make_panel


@pytest.fixture(scope="session")
def perturb():
    """perturb_rows(panel, mask, seed): scramble the masked bars, keeping them valid."""
    return perturb_rows
