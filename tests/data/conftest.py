"""Shared helpers for the data tests: the Panel contract and a small valid long frame."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from alphaforge.data import COLUMNS


def check_panel_contract(panel: pd.DataFrame) -> None:
    """Assert everything other modules rely on (see alphaforge.data.schema)."""
    assert isinstance(panel.index, pd.MultiIndex)
    assert list(panel.index.names) == ["timestamp", "symbol"]
    ts = panel.index.get_level_values("timestamp")
    assert str(ts.dtype) in ("datetime64[ns]", "datetime64[ns, UTC]"), ts.dtype
    symbols = panel.index.get_level_values("symbol")
    assert all(isinstance(s, str) for s in symbols.unique())
    assert panel.index.is_monotonic_increasing
    assert not panel.index.duplicated().any()
    expected = [*COLUMNS, *(["adj_close"] if "adj_close" in panel.columns else [])]
    assert list(panel.columns) == expected
    assert (panel.dtypes == np.float64).all()
    assert isinstance(panel.attrs["source"], str)
    assert isinstance(panel.attrs["freq"], pd.Timedelta)
    assert isinstance(panel.attrs["close_only"], bool)
    prices = panel[["open", "high", "low", "close"]].to_numpy()
    assert np.isfinite(prices).all() and (prices > 0).all()
    if panel.attrs["close_only"]:
        assert panel["volume"].isna().all()
        for col in ("open", "high", "low"):
            np.testing.assert_array_equal(panel[col].to_numpy(), panel["close"].to_numpy())
    else:
        assert panel["volume"].notna().all() and (panel["volume"] >= 0).all()
        assert (panel["low"] <= panel["high"] * (1 + 1e-9)).all()


@pytest.fixture
def panel_contract() -> Callable[[pd.DataFrame], None]:
    return check_panel_contract


def _make_long(
    n_bars: int = 30,
    symbols: tuple[str, ...] = ("AAA", "BBB"),
    freq: str | pd.DateOffset = "B",
    seed: int = 0,
) -> pd.DataFrame:
    """A valid long OHLCV frame, symbol-major order, canonical lower-case columns."""
    rng = np.random.default_rng(seed)
    parts = []
    for k, sym in enumerate(symbols):
        close = (20.0 + 10 * k) * np.exp(np.cumsum(0.01 * rng.standard_normal(n_bars)))
        open_ = close * (1 + 0.002 * rng.standard_normal(n_bars))
        parts.append(
            pd.DataFrame(
                {
                    "timestamp": pd.date_range("2021-01-04", periods=n_bars, freq=freq),
                    "symbol": sym,
                    "open": open_,
                    "high": np.maximum(open_, close) * 1.01,
                    "low": np.minimum(open_, close) * 0.99,
                    "close": close,
                    "volume": rng.integers(100, 1000, n_bars).astype(float),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


@pytest.fixture
def make_long() -> Callable[..., pd.DataFrame]:
    """Factory: ``make_long(n_bars=30, symbols=("AAA", "BBB"), freq="B", seed=0)``."""
    return _make_long


@pytest.fixture
def long_frame() -> pd.DataFrame:
    return _make_long()
