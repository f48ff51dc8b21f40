"""Baselines: exact values, unseen symbols, and GARCH against arch and a naive loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from arch import arch_model

from alphaforge.errors import ConfigError
from alphaforge.models.baselines import (
    GarchForecaster,
    LastValueForecaster,
    TrailingMeanForecaster,
    ZeroForecaster,
)
from alphaforge.testing import scramble_future


def _rename(frame: pd.DataFrame | pd.Series, mapping: dict[str, str]):
    return frame.rename(index=mapping, level="symbol")


def test_zero_predicts_zero(return_panel) -> None:
    X, y = return_panel
    pred = ZeroForecaster().fit(X, y).predict(X)
    assert (pred == 0.0).all() and pred.name == "y_pred"


def test_trailing_mean_per_symbol_window_and_unseen(tmp_path: Path, return_panel) -> None:
    X, y = return_panel
    model = TrailingMeanForecaster({"window": 30}).fit(X, y)
    labelled = y.dropna()
    for symbol, series in labelled.groupby(level="symbol"):
        assert model.means_[symbol] == pytest.approx(series.iloc[-30:].mean(), rel=1e-12)
    full = TrailingMeanForecaster().fit(X, y)
    assert full.means_["S00"] == pytest.approx(labelled.xs("S00", level="symbol").mean())
    assert full.global_mean_ == pytest.approx(labelled.mean())
    X_new = _rename(X, {"S00": "NEW"})
    pred = full.predict(X_new)
    assert (pred.xs("NEW", level="symbol") == full.global_mean_).all()
    assert (pred.xs("S01", level="symbol") == full.means_["S01"]).all()
    loaded = TrailingMeanForecaster.load(full.save(tmp_path / "m"))
    pd.testing.assert_series_equal(loaded.predict(X_new), pred, check_exact=True)


def test_last_value_predicts_the_column_and_checks_it(return_panel) -> None:
    X, y = return_panel
    pred = LastValueForecaster().fit(X, y).predict(X)
    np.testing.assert_array_equal(pred.to_numpy(), X["ret_1"].to_numpy())
    filled = LastValueForecaster({"column": "rv_20", "fill_value": 0.0}).fit(X, y).predict(X)
    np.testing.assert_array_equal(filled.to_numpy(), X["rv_20"].fillna(0.0).to_numpy())
    with pytest.raises(ConfigError, match="'ret_99' is not in X"):
        LastValueForecaster({"column": "ret_99"}).fit(X, y)


def _naive_garch(r: np.ndarray, p: pd.Series, h: int) -> np.ndarray:
    """Row-by-row GARCH(1,1) h-bar volatility forecast for one symbol (scaled returns)."""
    omega, alpha, beta, bc = p["omega"], p["alpha"], p["beta"], p["backcast"]
    s2, out, started = omega + (alpha + beta) * bc, [], False
    for x in r:
        e2 = s2 if np.isnan(x) else x**2
        f = [omega + alpha * e2 + beta * s2]
        for _ in range(h - 1):
            f.append(omega + (alpha + beta) * f[-1])
        out.append(np.sqrt(sum(f)))
        started |= not np.isnan(x)
        s2 = f[0] if started else s2
    return np.array(out)


@pytest.mark.parametrize(("horizon", "mean"), [(1, "zero"), (5, "zero"), (3, "constant")])
def test_garch_matches_arch_forecast_at_last_in_sample_bar(vol_panel, horizon, mean) -> None:
    X, y = vol_panel
    model = GarchForecaster({"horizon": horizon, "mean": mean}).fit(X, y)
    pred = model.predict(X)
    for symbol in ("S00", "S03"):
        r = X["ret_1"].xs(symbol, level="symbol").dropna().to_numpy() * 100
        res = arch_model(r, mean=mean.title(), vol="GARCH", p=1, q=1, rescale=False).fit(disp="off")
        expected = np.sqrt(res.forecast(horizon=horizon, reindex=False).variance.iloc[-1].sum())
        assert pred.xs(symbol, level="symbol").iloc[-1] == pytest.approx(expected / 100, rel=1e-9)
        if mean == "zero" and horizon == 1:  # arch's whole conditional volatility path
            ours = pred.xs(symbol, level="symbol").to_numpy()[1:-1]  # bar t forecasts bar t+1
            np.testing.assert_allclose(ours, res.conditional_volatility[1:] / 100, rtol=1e-9)


def test_garch_equals_naive_loop_with_gaps_and_unseen_symbols(vol_panel) -> None:
    X, y = vol_panel
    model = GarchForecaster({"horizon": 3}).fit(X, y)
    # drop some rows of one symbol (absent bars) and rename another (unseen: pooled parameters)
    stamps = X.index.get_level_values("timestamp")
    gaps = (X.index.get_level_values("symbol") == "S01") & np.isin(stamps, stamps.unique()[50:60])
    X_new = _rename(X[~gaps], {"S02": "NEW"})
    pred = model.predict(X_new)
    for symbol in ("S00", "S01", "NEW"):
        params = model.params_.loc[symbol] if symbol in model.params_.index else model.pooled_
        r = X_new["ret_1"].xs(symbol, level="symbol").to_numpy() * 100
        naive = _naive_garch(r, params, 3) / 100
        np.testing.assert_allclose(pred.xs(symbol, level="symbol").to_numpy(), naive, rtol=1e-12)


def test_garch_looks_only_backward(vol_panel) -> None:
    X, y = vol_panel
    stamps = X.index.get_level_values("timestamp").unique()
    train = X.index.get_level_values("timestamp") <= stamps[300]
    model = GarchForecaster({"horizon": 5}).fit(X[train], y[train])
    cut = stamps[450]
    past = X.index.get_level_values("timestamp") <= cut
    base = model.predict(X)[past]
    pd.testing.assert_series_equal(
        model.predict(scramble_future(X, cut))[past], base, check_exact=True
    )


def test_garch_pools_short_symbols_and_round_trips(tmp_path: Path, vol_panel) -> None:
    X, y = vol_panel
    stamps = X.index.get_level_values("timestamp")
    symbols = X.index.get_level_values("symbol")
    short = ~((symbols == "S01") & (stamps > stamps.unique()[50]))  # S01: 50 returns only
    model = GarchForecaster({"horizon": 2, "min_obs": 100}).fit(X[short], y[short])
    assert list(model.params_.index) == ["S00", "S02", "S03"]
    assert model.pooled_["omega"] == model.params_["omega"].median()
    loaded = GarchForecaster.load(model.save(tmp_path / "g"))
    pd.testing.assert_series_equal(loaded.predict(X), model.predict(X), check_exact=True)
    pd.testing.assert_series_equal(loaded.pooled_, model.pooled_)
    # no symbol long enough alone: one model fitted on all of them
    early = stamps <= stamps.unique()[60]
    pooled_only = GarchForecaster({"min_obs": 100}).fit(X[early], y[early])
    assert pooled_only.params_.empty
    assert np.isfinite(pooled_only.predict(X)).all()
