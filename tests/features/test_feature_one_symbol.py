"""A one-symbol panel: no constant cross-sectional columns, a WARNING naming them instead."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from alphaforge.features import DEFAULT_CS_FEATURES, build_features, feature_names


def _one(panel: pd.DataFrame, symbol: str = "EEE") -> pd.DataFrame:
    return panel[panel.index.get_level_values("symbol") == symbol]


def test_one_symbol_panel_skips_the_cross_section_and_warns(panel, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="alphaforge.features"):
        X = build_features(_one(panel))
    cs = [c for c in feature_names() if c.startswith("cs_")]
    assert len(cs) == 2 * len(DEFAULT_CS_FEATURES)
    assert list(X.columns) == [c for c in feature_names() if not c.startswith("cs_")]
    (record,) = caplog.records
    assert record.levelname == "WARNING" and "one symbol ('EEE')" in record.getMessage()
    assert all(c in record.getMessage() for c in cs)
    # the base features are those of the same symbol inside the full panel
    full = build_features(panel)
    np.testing.assert_array_equal(X.to_numpy(), full.loc[X.index, X.columns].to_numpy())


def test_cs_feature_that_is_not_an_output_is_not_computed_for_nothing(panel, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="alphaforge.features"):
        X = build_features(_one(panel), ["ret_1"], cs_features=["rv_20"])
    assert list(X.columns) == ["ret_1"] and "cs_rank_rv_20, cs_z_rv_20" in caplog.text


def test_no_warning_without_the_stage_or_with_two_symbols(panel, caplog) -> None:
    two = panel[panel.index.get_level_values("symbol").isin(["AAA", "EEE"])]
    with caplog.at_level(logging.WARNING, logger="alphaforge.features"):
        X = build_features(_one(panel), cross_section=False)
        Y = build_features(two)
    assert not caplog.records
    assert list(X.columns) == feature_names(cross_section=False)
    assert list(Y.columns) == feature_names()
    assert set(Y["cs_rank_ret_1"].dropna()) >= {0.0, 1.0}  # a real ranking of two symbols
