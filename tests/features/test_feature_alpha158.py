"""The Alpha158 catalogue: Qlib's names and order, catalogue selection, hand-checked values and
the NaN rules (warm-up, flat windows, zero and missing volume). Values against the naive
reference are in test_feature_reference.py, look-ahead checks in test_feature_leakage.py."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from alphaforge.errors import ConfigError
from alphaforge.features import (
    ALPHA158,
    CATALOGUES,
    DEFAULT_CS_FEATURES,
    FEATURES,
    build_features,
    catalogue_features,
    feature_names,
    max_lookback,
)
from alphaforge.testing import leakage_panel

KBAR = ["KMID", "KLEN", "KMID2", "KUP", "KUP2", "KLOW", "KLOW2", "KSFT", "KSFT2"]
PRICE = ["OPEN0", "HIGH0", "LOW0", "VWAP0"]
# Qlib's rolling operators in Qlib's order; True: one extra bar (a one-bar change)
OPERATORS = {
    "ROC": True, "MA": False, "STD": False, "BETA": False, "RSQR": False, "RESI": False,
    "MAX": False, "MIN": False, "QTLU": False, "QTLD": False, "RANK": False, "RSV": False,
    "IMAX": False, "IMIN": False, "IMXD": False, "CORR": False, "CORD": True, "CNTP": True,
    "CNTN": True, "CNTD": True, "SUMP": True, "SUMN": True, "SUMD": True, "VMA": False,
    "VSTD": False, "WVMA": True, "VSUMP": True, "VSUMN": True, "VSUMD": True,
}  # fmt: skip
WINDOWS = (5, 10, 20, 30, 60)
OHLCV = {"open", "high", "low", "close", "volume"}


def test_names_and_order_follow_qlib() -> None:
    rolling = [f"{op}{n}" for op in OPERATORS for n in WINDOWS]
    assert list(ALPHA158) == KBAR + PRICE + rolling
    assert len(ALPHA158) == 158
    assert not set(ALPHA158) & set(FEATURES)  # names are unique across catalogues


def test_specs() -> None:
    for name, spec in ALPHA158.items():
        assert spec.name == name and set(spec.fields) <= OHLCV and len(spec.description) > 10
        if name in KBAR or name in PRICE:
            assert spec.lookback == 1 and spec.family in {"alpha158_kbar", "alpha158_price"}
            continue
        op, n = name.rstrip("0123456789"), int(name.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        assert spec.family == "alpha158_rolling"
        assert spec.lookback == n + OPERATORS[op], name
    volume_ops = {"CORR", "CORD", "VMA", "VSTD", "WVMA", "VSUMP", "VSUMN", "VSUMD"}
    reads_volume = {n.rstrip("0123456789") for n, s in ALPHA158.items() if "volume" in s.fields}
    assert reads_volume == volume_ops


def test_catalogue_selection_and_errors(panel: pd.DataFrame) -> None:
    assert CATALOGUES == ("default", "alpha158", "both")
    assert catalogue_features() == catalogue_features("default") == list(FEATURES)
    assert catalogue_features("alpha158") == list(ALPHA158)
    assert catalogue_features("both") == list(FEATURES) + list(ALPHA158)
    for call in (
        lambda: catalogue_features("qlib"),
        lambda: build_features(panel, catalogue="qlib"),
        lambda: feature_names(catalogue="Alpha158"),
        lambda: max_lookback(catalogue="all"),
    ):
        with pytest.raises(
            ConfigError, match="unknown feature catalogue .*default, alpha158, both"
        ):
            call()
    with pytest.raises(ConfigError, match="unknown feature name.*alpha158 catalogue"):
        build_features(panel, ["ROC5", "ROC7"])


def test_max_lookback_per_catalogue() -> None:
    assert max_lookback() == max_lookback(catalogue="default") == 253
    assert max_lookback(catalogue="alpha158") == 61  # ROC60, CORD60 ...: 60 changes
    assert max_lookback(catalogue="both") == 253
    assert max_lookback(["KMID"]) == 1
    assert max_lookback(["MA60"]) == 60 and max_lookback(["SUMP60"]) == 61
    assert max_lookback(["ret_1", "ROC20"]) == 21  # names from either catalogue
    with pytest.raises(ConfigError, match="unknown feature"):
        max_lookback(["ROC7"])


def test_columns_and_cross_section_defaults(panel: pd.DataFrame) -> None:
    X = build_features(panel, catalogue="alpha158")
    assert list(X.columns) == list(ALPHA158) == feature_names(catalogue="alpha158")  # no cs_*
    assert X.index is panel.index and (X.dtypes == np.float64).all()
    both = feature_names(catalogue="both")
    cs = [f"cs_{kind}_{n}" for kind in ("rank", "z") for n in DEFAULT_CS_FEATURES]
    assert both == list(FEATURES) + list(ALPHA158) + cs
    # explicit names mix catalogues; the cross-section takes names of either
    Y = build_features(panel, ["KMID", "ret_1"], cs_features=["ret_1", "ROC5"])
    assert list(Y.columns) == [
        "KMID",
        "ret_1",
        "cs_rank_ret_1",
        "cs_rank_ROC5",
        "cs_z_ret_1",
        "cs_z_ROC5",
    ]
    assert Y["cs_rank_ROC5"].between(0, 1).any()
    np.testing.assert_array_equal(Y["KMID"], X["KMID"])


def _one_symbol(close: np.ndarray, volume: np.ndarray | None = None) -> pd.DataFrame:
    """One symbol's daily bars with this close; open = close, high/low 1% around it."""
    n = len(close)
    index = pd.MultiIndex.from_arrays(
        [pd.bdate_range("2021-01-04", periods=n), ["X"] * n], names=["timestamp", "symbol"]
    )
    volume = np.full(n, 1000.0) if volume is None else volume
    bars = {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close}
    return pd.DataFrame({**bars, "volume": volume}, index=index)


def test_hand_checked_values_on_a_straight_line() -> None:
    close = np.arange(1.0, 13.0)  # 1, 2, ..., 12: a perfect upward line
    X = build_features(_one_symbol(close), catalogue="alpha158")
    last = X.iloc[-1]  # window of 5: closes 8..12
    assert np.isnan(X["MA5"].iloc[3]) and np.isfinite(X["MA5"].iloc[4])  # warm-up: 4 bars
    assert np.isnan(X["ROC5"].iloc[4]) and X["ROC5"].iloc[5] == 1.0 / 6.0
    assert last["MA5"] == pytest.approx(10 / 12)
    assert last["BETA5"] == pytest.approx(1 / 12) and last["RSQR5"] == pytest.approx(1.0)
    assert last["RESI5"] == pytest.approx(0.0, abs=1e-12)
    # the 0.8 quantile of 8..12 sits at sorted position 3.2: 11.2; 0.2 at 0.8: 8.8
    assert last["QTLU5"] == pytest.approx(11.2 / 12) and last["QTLD5"] == pytest.approx(8.8 / 12)
    assert last["RANK5"] == 1.0  # the highest close of its window
    # IdxMax is 1-based from the oldest bar: the current bar is position 5 of 5
    assert last["IMAX5"] == 1.0 and last["IMIN5"] == 0.2 and last["IMXD5"] == 0.8
    assert last["CNTP5"] == 1.0 and last["CNTN5"] == 0.0 and last["CNTD5"] == 1.0
    assert last["SUMP5"] == pytest.approx(1.0) and last["SUMN5"] == 0.0
    assert last["RSV5"] == pytest.approx((12 - 8 * 0.99) / (12 * 1.01 - 8 * 0.99))
    assert last["KMID"] == 0.0 and last["KLEN"] == pytest.approx(0.02)
    assert last["VWAP0"] == pytest.approx(1.0) and last["HIGH0"] == pytest.approx(1.01)
    assert last["VMA5"] == pytest.approx(1.0) and last["VSTD5"] == 0.0
    assert last["VSUMP5"] == 0.0  # flat volume: no change, the 1e-12 guard gives 0


def test_flat_windows_and_zero_volume() -> None:
    close = np.array([5.0, 6.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.5, 8.0, 8.2, 8.1])
    volume = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 0.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X = build_features(_one_symbol(close, volume), catalogue="alpha158")
    flat = X.iloc[7]  # closes (and highs, lows) of bars 3..7 all equal, no change since bar 2
    assert flat["STD5"] == 0.0 and flat["BETA5"] == 0.0 and flat["RESI5"] == 0.0
    assert np.isnan(flat["RSQR5"]) and np.isnan(flat["CORR5"])
    assert flat["RANK5"] == pytest.approx(0.6)  # five ties share the mean rank 3 of 5
    assert flat["IMAX5"] == 0.2 and flat["IMIN5"] == 0.2  # first occurrence: the oldest bar
    assert flat["SUMP5"] == 0.0 and flat["CNTP5"] == 0.0 and flat["RSV5"] > 0
    # zero volume at bar 5: VMA divides by volume + 1e-12 (Qlib), finite but huge
    assert X["VMA5"].iloc[5] == pytest.approx(28.0 / 1e-12)
    # the volume ratio after it (bar 6) is undefined: CORD is NaN in every window holding bar 6
    cord = X["CORD5"].to_numpy()
    assert np.isfinite(cord[[5, 11]]).all() and np.isnan(np.delete(cord, [5, 11])).all()
    assert not np.isinf(X.to_numpy()).any()


def test_close_only_and_halted_panels(close_only_panel: pd.DataFrame) -> None:
    X = build_features(close_only_panel, catalogue="alpha158")
    volume_features = [n for n, s in ALPHA158.items() if "volume" in s.fields]
    assert X[volume_features].isna().all().all()
    others = [n for n in ALPHA158 if n not in volume_features]
    assert X[others].notna().any().all()
    assert (X[["KMID", "KLEN", "KMID2", "KSFT2"]] == 0).all().all()  # flat bars
    # a 5-bar halt (flat prices, zero volume): no warning, nothing infinite
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        H = build_features(leakage_panel(), catalogue="both", dtype=np.float32)
    assert (H.dtypes == np.float32).all() and not np.isinf(H.to_numpy()).any()
