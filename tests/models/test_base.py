"""BaseForecaster: config validation, input validation, fitted state and the save format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaforge.errors import ConfigError, DataError, NotFittedError
from alphaforge.models.base import BaseForecaster
from alphaforge.models.baselines import (
    TrailingMeanConfig,
    TrailingMeanForecaster,
    ZeroForecaster,
)
from alphaforge.models.trees import LightGBMConfig, LightGBMForecaster, XGBoostForecaster


def test_from_params_unknown_key_names_valid_keys() -> None:
    with pytest.raises(ConfigError) as err:
        LightGBMForecaster.from_params({"num_leafs": 31, "learning_rate": 0.1})
    message = str(err.value)
    assert "'num_leafs'" in message and "valid:" in message
    assert "num_leaves" in message and "min_child_samples" in message


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"learning_rate": "1e-3"}, r"LightGBMConfig.learning_rate must be float, got '1e-3'"),
        ({"num_leaves": 3.5}, "num_leaves must be int"),
        ({"num_leaves": True}, "num_leaves must be int"),
        ({"objective": "poisson"}, "objective must be"),
        ({"learning_rate": -0.1}, r"learning_rate must be > 0, got -0.1"),
        ({"subsample": 1.5}, r"subsample must be in \(0, 1\]"),
    ],
)
def test_from_params_rejects_bad_values(params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        LightGBMForecaster.from_params(params)


def test_config_forms_and_init_stores_arguments_unchanged(return_panel) -> None:
    X, y = return_panel
    overrides = {"n_estimators": 5, "n_jobs": 1}
    model = LightGBMForecaster(overrides, random_state=7)
    assert model.config is overrides and not hasattr(model, "config_")
    model.fit(X, y)
    assert model.config is overrides and model.config_ == LightGBMConfig(n_estimators=5, n_jobs=1)
    assert TrailingMeanForecaster().fit(X, y).config_ == TrailingMeanConfig()
    with pytest.raises(ConfigError, match="unknown parameter"):
        LightGBMForecaster({"bogus": 1}).fit(X, y)  # a dict config is validated in fit
    with pytest.raises(ConfigError, match="random_state"):
        ZeroForecaster(random_state=-1).fit(X, y)
    assert LightGBMForecaster.from_params(None).config == LightGBMConfig()


def test_fit_drops_unlabelled_rows_and_forgets_previous_fit(return_panel) -> None:
    X, y = return_panel
    model = TrailingMeanForecaster().fit(X, y)
    assert not np.isnan(model.global_mean_)
    model.fit(X.iloc[:50], y.iloc[:50])
    assert model.global_mean_ == pytest.approx(y.iloc[:50].mean())
    symbols_seen = set(X.iloc[:50].index.get_level_values("symbol"))
    assert set(model.means_.index) == symbols_seen


def _bad_inputs(X: pd.DataFrame, y: pd.Series):
    inf = X.copy()
    inf.iloc[3, 1] = np.inf
    flat = X.reset_index(drop=True)
    renamed = X.rename_axis(index=["date", "ticker"])
    text = X.assign(ret_1=X["ret_1"].astype(str))
    return [
        (inf, y, "column 'ret_1' is infinite"),
        (flat, y.reset_index(drop=True), r"MultiIndex \('timestamp', 'symbol'\)"),
        (renamed, y, "got index names"),
        (X.iloc[:0], y.iloc[:0], "empty"),
        (X, y.iloc[::-1], "indexed exactly like X"),
        (X, y * np.nan, "no labelled rows"),
        (text, y, "non-numeric columns"),
        (pd.concat([X.iloc[:5], X.iloc[:1]]), pd.concat([y.iloc[:5], y.iloc[:1]]), "duplicate"),
    ]


def test_fit_rejects_bad_inputs_with_data_error(return_panel) -> None:
    X, y = return_panel
    for X_bad, y_bad, match in _bad_inputs(X, y):
        with pytest.raises(DataError, match=match):
            ZeroForecaster().fit(X_bad, y_bad)


def test_valid_window_is_validated(return_panel) -> None:
    X, y = return_panel
    model = XGBoostForecaster.from_params(XGBoostForecaster.test_params())
    with pytest.raises(DataError, match="same columns"):
        model.fit(X, y, valid=(X[X.columns[::-1]], y))
    with pytest.raises(DataError, match="y_valid has no labelled rows"):
        model.fit(X, y, valid=(X, y * np.nan))
    with pytest.raises(DataError, match="tuple"):
        model.fit(X, y, valid=X)  # type: ignore[arg-type]


def test_predict_checks_fitted_and_columns(return_panel) -> None:
    X, y = return_panel
    with pytest.raises(NotFittedError, match="ZeroForecaster is not fitted yet"):
        ZeroForecaster().predict(X)
    with pytest.raises(NotFittedError):
        _ = LightGBMForecaster().feature_importances_
    with pytest.raises(AttributeError):
        _ = ZeroForecaster().fit(X, y).feature_importances_
    model = ZeroForecaster().fit(X, y)
    with pytest.raises(DataError, match=r"missing \['ret_1'\], unexpected \['other'\]"):
        model.predict(X.rename(columns={"ret_1": "other"}))


def test_save_layout_meta_and_overwrite_rules(tmp_path: Path, return_panel) -> None:
    X, y = return_panel
    model = LightGBMForecaster.from_params({"n_estimators": 5, "n_jobs": 1}, random_state=3)
    path = model.fit(X, y).save(tmp_path / "run" / "lgbm")
    meta = json.loads((path / "meta.json").read_text())
    assert meta["model"] == "lightgbm"
    assert meta["class"] == "alphaforge.models.trees:LightGBMForecaster"
    assert meta["config"]["n_estimators"] == 5 and meta["random_state"] == 3
    assert meta["feature_names"] == list(X.columns) and meta["alphaforge_version"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left
    model.save(path)  # replacing a saved model is fine
    loaded = BaseForecaster.load(path)  # class resolved through the registry
    assert isinstance(loaded, LightGBMForecaster) and loaded.random_state == 3
    with pytest.raises(DataError, match="not a XGBoostForecaster"):
        XGBoostForecaster.load(path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="refusing to overwrite"):
        model.save(tmp_path / "other")
    with pytest.raises(DataError, match="not a saved model"):
        BaseForecaster.load(tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me"
