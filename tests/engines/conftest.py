"""Fixtures of the engine tests: a local Dask cluster (threads, no network), awkward panels and
the same panel stored as partitioned datasets of every layout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaforge.data import synthetic_panel, validate_panel
from alphaforge.engines.cluster import ClusterSpec, connect
from alphaforge.testing import leakage_panel

LAYOUTS = ("symbol_folders", "date_folders", "plain_shards", "glob")


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    """Two single-threaded workers in this process: no ports beyond in-process queues."""
    with connect(ClusterSpec(workers=2, processes=False)) as c:
        yield c


def intraday_panel(seed: int = 5) -> pd.DataFrame:
    """15-minute UTC bars of three symbols; ETH starts late and misses bars, SOL ends early."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2024-03-01", periods=4 * 96, freq="15min", tz="UTC").as_unit("ns")
    frames = []
    for sym, (a, b), level in (
        ("BTC", (0, 384), 6e4),
        ("ETH", (40, 384), 3e3),
        ("SOL", (0, 300), 150),
    ):
        n = b - a
        close = level * np.exp(np.cumsum(0.004 * rng.standard_normal(n)))
        opn = np.r_[close[0], close[:-1]]
        frame = pd.DataFrame(
            {
                "timestamp": stamps[a:b],
                "symbol": sym,
                "open": opn,
                "high": np.maximum(opn, close) * 1.001,
                "low": np.minimum(opn, close) * 0.999,
                "close": close,
                "volume": rng.lognormal(8, 0.5, n),
            }
        )
        if sym == "ETH":
            frame = frame.drop(frame.index[[7, 8, 100]])
        frames.append(frame)
    return validate_panel(pd.concat(frames))


PANELS = {
    # late start, gaps, a halt, a split
    "daily_awkward": lambda: validate_panel(leakage_panel(n_bars=300)),
    "daily_wide": lambda: synthetic_panel(n_symbols=12, n_bars=300, seed=4, gaps=True),
    "intraday_utc": intraday_panel,
}


def write_dataset(panel: pd.DataFrame, root: Path, layout: str) -> str:
    """``panel`` stored as a partitioned dataset; returns the source string to load it."""
    long = panel.reset_index()
    long.attrs = {}
    symbols = sorted(long["symbol"].unique())
    root.mkdir(parents=True)
    if layout == "symbol_folders":  # hive symbol=..., no symbol column in the files
        for sym, rows in long.groupby("symbol"):
            (root / f"symbol={sym}").mkdir()
            rows.drop(columns="symbol").to_parquet(root / f"symbol={sym}" / "part-0.parquet")
        return str(root)
    if layout == "date_folders":  # every file holds every symbol: a shuffle by symbol
        month = long["timestamp"].dt.strftime("%Y-%m-%d")
        for day, rows in long.groupby(month.str[:7] if len(month.unique()) > 40 else month):
            (root / f"date={day}").mkdir()
            rows.to_parquet(root / f"date={day}" / "bars.parquet", index=False)
        return str(root)
    for k in range(0, len(symbols), 2):  # plain shards of two symbols each
        rows = long[long["symbol"].isin(symbols[k : k + 2])]
        rows.to_parquet(root / f"shard-{k:03d}.parquet", index=False)
    return str(root) if layout == "plain_shards" else str(root / "shard-*.parquet")


def read_dataset(root: Path) -> pd.DataFrame:
    """A feature dataset's parts as one frame on a (timestamp, symbol) index, sorted."""
    parts = sorted(root.glob("part-*.parquet"))
    frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    frame["timestamp"] = pd.DatetimeIndex(frame["timestamp"]).as_unit("ns")
    return frame.set_index(["timestamp", "symbol"]).sort_index()


def assert_same_values(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Same columns, same bars, bit-identical values and NaNs."""
    assert list(got.columns) == list(want.columns)
    assert got.index.equals(want.index)
    a, b = got.to_numpy(), want.to_numpy()
    assert a.dtype == b.dtype
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    if not same.all():
        r, c = np.argwhere(~same)[0]
        raise AssertionError(f"{got.columns[c]} at {got.index[r]}: {a[r, c]!r} != {b[r, c]!r}")
