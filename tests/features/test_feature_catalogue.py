"""The FEATURES catalogue, max_lookback and build_features' contract (shape, index, errors)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

from alphaforge.errors import ConfigError, DataError
from alphaforge.features import (
    ALPHA158,
    DEFAULT_CS_FEATURES,
    FEATURES,
    FeatureSpec,
    build_features,
    feature_names,
    max_lookback,
)

OHLCV = {"open", "high", "low", "close", "volume"}
FAMILIES = {"returns", "volatility", "momentum", "oscillators", "volume", "calendar"}
_SPECS = {**FEATURES, **ALPHA158}


def test_catalogue_size_and_specs() -> None:
    assert 90 <= len(FEATURES) <= 110
    assert len(set(FEATURES)) == len(FEATURES)
    for name, spec in FEATURES.items():
        assert isinstance(spec, FeatureSpec) and spec.name == name
        assert spec.family in FAMILIES
        assert spec.lookback >= 1
        assert set(spec.fields) <= OHLCV
        assert len(spec.description) > 10
    assert {s.family for s in FEATURES.values()} == FAMILIES
    with pytest.raises(dataclasses.FrozenInstanceError):
        FEATURES["ret_1"].lookback = 5  # type: ignore[misc]


def test_catalogue_covers_the_brief() -> None:
    for k in (1, 2, 3, 5, 10, 20, 60, 120, 250):
        assert f"ret_{k}" in FEATURES
    for name in (
        "gap",
        "intraday_ret",
        "hl_range",
        "parkinson_20",
        "garman_klass_20",
        "rogers_satchell_20",
        "atr_14",
        "natr_14",
        "downside_vol_20",
        "vol_of_vol_20",
        "skew_20",
        "kurt_20",
        "mom_12_1",
        "sma_dist_200",
        "ema_dist_200",
        "ma_cross_50_200",
        "dist_high_250",
        "dist_low_20",
        "donchian_20",
        "linreg_slope_20",
        "rsi_6",
        "rsi_14",
        "rsi_28",
        "stoch_k_14",
        "stoch_d_14",
        "williams_r_14",
        "macd",
        "macd_signal",
        "macd_hist",
        "bb_pctb_20",
        "bb_width_20",
        "cci_20",
        "volume_z_20",
        "volume_ratio_20",
        "obv_slope_20",
        "obv_z_20",
        "dollar_volume_20",
        "amihud_20",
        "vp_corr_20",
        "dow_sin",
        "month_cos",
        "day_of_month",
        "tod_sin",
        "minutes_since_open",
    ):
        assert name in FEATURES, name
    assert 6 <= len(DEFAULT_CS_FEATURES) <= 10
    assert set(DEFAULT_CS_FEATURES) <= set(FEATURES)
    assert "ret_1" in DEFAULT_CS_FEATURES


def test_max_lookback() -> None:
    assert max_lookback() == max(s.lookback for s in FEATURES.values()) == 253
    assert max_lookback(["ret_1"]) == 2
    assert max_lookback(["ret_1", "ret_20"]) == 21
    assert max_lookback(["dow_sin"]) == 1
    with pytest.raises(ConfigError, match="unknown feature"):
        max_lookback(["nope"])


def test_output_shape_index_dtype(panel: pd.DataFrame) -> None:
    X = build_features(panel)
    assert X.index is panel.index
    n_cs = len(DEFAULT_CS_FEATURES)
    assert X.shape == (len(panel), len(FEATURES) + 2 * n_cs)
    assert list(X.columns) == feature_names()
    assert list(X.columns[: len(FEATURES)]) == list(FEATURES)
    assert X.columns[len(FEATURES)] == f"cs_rank_{DEFAULT_CS_FEATURES[0]}"
    assert X.columns[-1] == f"cs_z_{DEFAULT_CS_FEATURES[-1]}"
    assert (X.dtypes == np.float64).all()
    assert not np.isinf(X.to_numpy()).any()  # zero volume, flat bars: NaN, never inf


def test_names_and_cs_selection(panel: pd.DataFrame) -> None:
    X = build_features(panel, ["rsi_14", "ret_1"])  # cs columns in DEFAULT_CS_FEATURES order
    assert list(X.columns) == [
        "rsi_14",
        "ret_1",
        "cs_rank_ret_1",
        "cs_rank_rsi_14",
        "cs_z_ret_1",
        "cs_z_rsi_14",
    ]
    assert list(build_features(panel, ["ret_5"], cross_section=False).columns) == ["ret_5"]
    # a cross-sectional feature not among names: only its cs columns
    Y = build_features(panel, ["ret_5"], cs_features=["rv_20"])
    assert list(Y.columns) == ["ret_5", "cs_rank_rv_20", "cs_z_rv_20"]
    full = build_features(panel)
    np.testing.assert_array_equal(Y["cs_rank_rv_20"], full["cs_rank_rv_20"])
    np.testing.assert_array_equal(X["rsi_14"], full["rsi_14"])
    with pytest.raises(ConfigError, match="unknown feature"):
        build_features(panel, ["ret_1", "bogus"])
    with pytest.raises(ConfigError, match="cross-sectional"):
        build_features(panel, ["ret_1"], cs_features=["bogus"])


def test_float32_output(panel: pd.DataFrame) -> None:
    X64 = build_features(panel)
    X32 = build_features(panel, dtype=np.float32)
    assert (X32.dtypes == np.float32).all()
    np.testing.assert_allclose(X32.to_numpy(), X64.to_numpy(), rtol=1e-6, atol=1e-30)


def test_bad_panels_raise_data_error(panel: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="MultiIndex"):
        build_features(panel.reset_index())
    with pytest.raises(DataError, match="lacks column"):
        build_features(panel.drop(columns="high"), ["hl_range"])
    build_features(panel.drop(columns="high"), ["ret_1", "rsi_14"])  # high not needed: fine
    shuffled = panel.sample(frac=1.0, random_state=0)
    with pytest.raises(DataError, match="sorted"):
        build_features(shuffled)
    doubled = pd.concat([panel.iloc[:10], panel.iloc[9:20]])
    with pytest.raises(DataError, match="duplicate"):
        build_features(doubled)
    with pytest.raises(DataError, match="DataFrame"):
        build_features(panel["close"])  # type: ignore[arg-type]


def test_empty_and_tiny_panels(panel: pd.DataFrame) -> None:
    X = build_features(panel.iloc[:0])
    assert X.shape == (0, len(feature_names()))
    tiny = panel.iloc[:3]  # three symbols, one bar each
    X = build_features(tiny)
    assert X["ret_1"].isna().all() and X["hl_range"].notna().all()
    assert (X["cs_rank_ret_1"].isna()).all()


def test_no_warnings_on_awkward_panels(
    panel: pd.DataFrame, close_only_panel: pd.DataFrame, intraday_panel: pd.DataFrame
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for p in (panel, close_only_panel, intraday_panel):
            build_features(p)


def test_close_only_panel(close_only_panel: pd.DataFrame) -> None:
    X = build_features(close_only_panel)
    volume_features = [n for n, s in FEATURES.items() if "volume" in s.fields]
    assert len(volume_features) >= 10
    assert X[volume_features].isna().all().all()
    others = [n for n, s in FEATURES.items() if "volume" not in s.fields and n != "close_loc"]
    assert X[others].notna().any().all()  # everything else is computed
    assert (X["hl_range"] == 0).all() and (X["parkinson_20"].dropna() == 0).all()
    # no volume column at all behaves the same
    Y = build_features(close_only_panel.drop(columns="volume"), volume_features)
    assert Y[volume_features].isna().all().all()


def test_intraday_session_features(intraday_panel: pd.DataFrame) -> None:
    X = build_features(intraday_panel)
    assert X.index.get_level_values("timestamp").tz is not None
    btc = X.xs("BTC", level="symbol")
    # BTC trades every 15 minutes from midnight UTC: minutes since the day's first bar
    minutes = btc.index.hour * 60 + btc.index.minute
    np.testing.assert_array_equal(btc["minutes_since_open"], minutes)
    np.testing.assert_allclose(btc["tod_sin"], np.sin(2 * np.pi * minutes / 1440), atol=1e-12)
    # ETH starts mid-day: its first session opens at its first bar
    eth = X.xs("ETH", level="symbol")
    assert eth["minutes_since_open"].iloc[0] == 0.0
    assert eth["minutes_since_open"].iloc[1] == 15.0
    assert X["ret_1"].notna().mean() > 0.99


def test_daily_session_features_are_constant(panel: pd.DataFrame) -> None:
    X = build_features(panel, ["tod_sin", "tod_cos", "minutes_since_open", "dow_sin"])
    assert (X["tod_sin"] == 0).all() and (X["tod_cos"] == 1).all()
    assert (X["minutes_since_open"] == 0).all()
    assert X["dow_sin"].nunique() == 5  # business days


def test_declared_fields_are_all_a_feature_reads(panel: pd.DataFrame) -> None:
    # built from its declared columns only, every feature of either catalogue keeps its values
    full = build_features(panel, catalogue="both", cross_section=False)
    for name in full.columns:
        fields = list(_SPECS[name].fields) or ["close"]  # calendar features read only the index
        alone = build_features(panel[fields], [name], cross_section=False)[name]
        np.testing.assert_array_equal(alone.to_numpy(), full[name].to_numpy(), err_msg=name)
