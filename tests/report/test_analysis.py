"""The numbers behind the report's plots, checked against naive loops."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alphaforge.report import analysis as an
from alphaforge.report.tables import fmt, fmt_seconds, fmt_time


def _rows(seed: int = 0, n_ts: int = 30, n_sym: int = 13) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2023-01-02", periods=n_ts, freq="D")
    frame = pd.DataFrame(
        {
            "timestamp": np.repeat(ts, n_sym),
            "symbol": np.tile([f"S{i}" for i in range(n_sym)], n_ts),
            "fold": 0,
            "y_true": rng.normal(size=n_ts * n_sym),
            "y_pred": rng.integers(0, 4, n_ts * n_sym).astype(float),
        }
    )  # many ties
    frame.loc[frame.index[::7], "y_true"] = np.nan
    return frame


def test_quantile_returns_matches_naive_loop() -> None:
    rows = _rows()
    got = an.quantile_returns(rows, 5)
    assert got is not None and list(got.columns) == ["Q1", "Q2", "Q3", "Q4", "Q5"]
    for t, g in rows.groupby("timestamp"):
        g = g.dropna(subset=["y_true", "y_pred"]).sort_values(["y_pred", "symbol"])
        n = len(g)
        buckets: dict[int, list[float]] = {}
        for r, y in enumerate(g["y_true"], start=1):
            buckets.setdefault(math.ceil(r * 5 / n), []).append(y)
        for b, ys in buckets.items():
            assert got.loc[t, f"Q{b}"] == pytest.approx(np.mean(ys))


def test_quantile_returns_needs_a_cross_section() -> None:
    assert an.quantile_returns(_rows(n_sym=1)) is None
    three = an.quantile_returns(_rows(n_sym=3), 5)
    assert three is not None and list(three.columns) == ["Q1", "Q2", "Q3"]


def test_equity_and_drawdown() -> None:
    r = pd.Series([0.1, -0.5, np.nan, 1.0])
    eq = an.equity_curve(r)
    np.testing.assert_allclose(eq, [1.1, 0.55, 0.55, 1.1])
    np.testing.assert_allclose(an.drawdown(eq), [0.0, -0.5, -0.5, 0.0])
    np.testing.assert_allclose(an.drawdown(an.equity_curve(pd.Series([-0.1]))), [-0.1])


def test_split_predictions_dedupes_overlapping_folds() -> None:
    rows = _rows(n_ts=2, n_sym=2).assign(model="m", split="test")
    later = rows.assign(fold=1, y_pred=99.0)
    out = an.split_predictions(pd.concat([later, rows]), "m", "test")
    assert len(out) == 4 and (out["y_pred"] == 99.0).all()


def test_scatter_sample_is_seeded_and_capped() -> None:
    rows = _rows(n_ts=100, n_sym=100)
    x1, y1 = an.scatter_sample(rows, 500, seed=0)
    x2, y2 = an.scatter_sample(rows, 500, seed=0)
    assert len(x1) == 500 and np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert np.isfinite(y1).all()


def test_mean_by_feature_orders_and_caps() -> None:
    frame = pd.DataFrame(
        {
            "fold": [0, 1, 0, 1, 0],
            "feature": ["a", "a", "b", "b", "c"],
            "importance": [1.0, 3.0, 5.0, 5.0, 2.0],
        }
    )
    out = an.mean_by_feature(frame, "importance", top=2)
    assert list(out.index) == ["b", "a"]
    assert out.loc["a", "mean"] == 2.0 and out.loc["b", "std"] == 0.0


def test_ic_over_time_and_rolling_mean() -> None:
    rows = _rows()
    per = an.ic_over_time(rows)
    assert per is not None and list(per.columns) == ["ic", "rank_ic"]
    assert len(per) == 30
    roll = an.rolling_mean(per["ic"], 20)
    assert roll.iloc[-1] == pytest.approx(per["ic"].iloc[-20:].mean())
    assert an.ic_over_time(_rows(n_sym=1)) is None


def test_formatting() -> None:
    assert fmt(None) == fmt(float("nan")) == fmt("x") == fmt(True) == "\u2013"
    assert fmt(0.12345) == "0.1235" and fmt(1.5e-5) == "1.5e-05" and fmt(0) == "0.0000"
    assert fmt(0.123, "pct") == "12.3%" and fmt(1.234, "ratio") == "1.23"
    assert fmt_seconds(5) == "5.0 s" and fmt_seconds(125) == "2 min 05 s"
    assert fmt_seconds(3725) == "1 h 02 min" and fmt_seconds(None) == "\u2013"
    assert fmt_time("2021-03-04 00:00:00") == "2021-03-04"
    assert fmt_time("2021-03-04 15:30:00") == "2021-03-04 15:30" and fmt_time(None) == "\u2013"
