"""The hand-off to tree libraries: one float32 matrix per fold, library datasets built once per
fold and shared, results identical to unshared fits, byte-identical runs for every tree model."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
import yaml

from alphaforge.models import fold_matrix
from alphaforge.models.base import predict_rows
from alphaforge.models.baselines import GarchForecaster
from alphaforge.models.fold_matrix import (
    fit_rows,
    float32_features,
    shared,
    shared_fold,
    take_rows,
)
from alphaforge.models.forest import RandomForestForecaster
from alphaforge.models.trees import LightGBMForecaster, XGBoostForecaster
from alphaforge.run import fit_model, run_experiment
from alphaforge.testing import tiny_problem

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def fold() -> tuple[pd.DataFrame, pd.Series, np.ndarray, np.ndarray]:
    """A panel whose last bars have NaN labels, with train and valid masks."""
    X, y = tiny_problem(n_symbols=12, n_bars=300, n_features=6, seed=3)
    stamps = X.index.get_level_values("timestamp")
    u = np.unique(stamps)
    y = y.copy()
    y[stamps >= u[-3]] = np.nan
    train = np.asarray(stamps < u[200])
    valid = np.asarray((stamps >= u[200]) & (stamps < u[260]))
    return X, y, train, valid


def test_float32_matrix_is_built_once_inside_a_block_and_afresh_outside(fold) -> None:
    X, _, train, _ = fold
    outside = float32_features(X)
    assert outside.dtype == np.float32 and outside.flags.c_contiguous and outside.flags.writeable
    assert float32_features(X) is not outside  # a caller's frame may change between fits
    np.testing.assert_array_equal(outside, X.to_numpy(np.float32))
    with shared_fold(X):
        rows = take_rows(X, train)
        assert take_rows(X, train) is rows  # the same frame for every model of the fold
        a = float32_features(rows)
        assert float32_features(rows) is a and not a.flags.writeable and a.flags.c_contiguous
        np.testing.assert_array_equal(a, X[train].to_numpy(np.float32))
        with shared_fold(X):  # nested: one block
            assert float32_features(rows) is a
        assert float32_features(rows) is a
    assert fold_matrix._ENTRIES == {}  # nothing outlives the block
    assert take_rows(X, train) is not take_rows(X, train)


def test_rows_of_a_shared_frame_are_cut_from_its_matrix(fold) -> None:
    X, y, train, _ = fold
    with shared_fold(X):
        whole = float32_features(X)
        part = take_rows(X, train)
        np.testing.assert_array_equal(float32_features(part), whole[train])
        assert shared(part, "k", lambda: object()) is shared(part, "k", lambda: object())
    assert shared(part, "k", lambda: 1) == 1


def test_fit_rows_drops_unlabelled_rows_once(fold) -> None:
    X, y, _, _ = fold
    every = np.ones(len(X), dtype=bool)
    with shared_fold(X):
        X_fit, y_fit = fit_rows(X, y, every)
        assert y_fit.notna().all() and len(X_fit) == y.notna().sum()
        assert fit_rows(X, y, every)[0] is X_fit
        kept, _ = fit_rows(X, y, every, GarchForecaster())  # fitted on features alone
        assert kept is X
    unlabelled = y.isna().to_numpy()
    X_none, y_none = fit_rows(X, y, unlabelled)  # nothing labelled: the model's fit says so
    assert len(X_none) == unlabelled.sum() and y_none.isna().all()


def _counting(monkeypatch, module, name: str) -> list[np.ndarray]:
    """Record the feature array of every ``module.name(...)`` call."""
    real, seen = getattr(module, name), []

    def spy(data, *args, **kwargs):
        seen.append(data)
        return real(data, *args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return seen


def test_models_of_a_fold_share_the_matrix_and_lightgbm_datasets(fold, monkeypatch) -> None:
    X, y, train, valid = fold
    gbdt = {**LightGBMForecaster.test_params(), "n_estimators": 15}
    forest = {**RandomForestForecaster.test_params(), "n_estimators": 15}
    alone = [
        fit_model(LightGBMForecaster.from_params(gbdt), X, y, train, valid, None),
        fit_model(LightGBMForecaster.from_params(gbdt, random_state=9), X, y, train, valid, None),
        fit_model(RandomForestForecaster.from_params(forest), X, y, train, valid, None),
    ]
    seen = _counting(monkeypatch, lgb, "Dataset")
    with shared_fold(X):
        together = [
            fit_model(m.clone(), X, y, train, valid, None) for m in alone
        ]  # GBDT, GBDT with another seed, forest: one training and one valid Dataset
        X_train = fit_rows(X, y, train)[0]
        assert len(seen) == 2 and seen[0] is float32_features(X_train)  # float32, not a copy
        preds = [predict_rows(m, X, valid) for m in together]
    for a, b, p in zip(alone, together, preds, strict=True):  # sharing changes nothing
        expected = a.predict(X[valid]).to_numpy()
        assert (
            expected.tobytes() == b.predict(X[valid]).to_numpy().tobytes() == p.to_numpy().tobytes()
        )


def test_xgboost_models_of_a_fold_share_quantised_matrices(fold, monkeypatch) -> None:
    X, y, train, valid = fold
    params = {**XGBoostForecaster.test_params(), "n_estimators": 15}
    alone = [
        fit_model(XGBoostForecaster.from_params(params, random_state=s), X, y, train, valid, None)
        for s in (0, 1)
    ]
    seen = _counting(monkeypatch, xgb, "QuantileDMatrix")
    with shared_fold(X):
        together = [fit_model(m.clone(), X, y, train, valid, None) for m in alone]
        assert len(seen) == 2 and all(a.dtype == np.float32 for a in seen)  # train + valid
    for a, b in zip(alone, together, strict=True):
        assert a.predict(X).to_numpy().tobytes() == b.predict(X).to_numpy().tobytes()


def test_predict_rows_by_mask_equals_by_index(fold) -> None:
    X, y, train, valid = fold
    model = fit_model(
        LightGBMForecaster.from_params(LightGBMForecaster.test_params()), X, y, train, None, None
    )
    rows = X.index[valid]
    pd.testing.assert_series_equal(predict_rows(model, X, valid), predict_rows(model, X, rows))
    vol = (y.abs() + 1e-3).rename("vol")
    garch = GarchForecaster().fit(X[train], vol[train])  # reads context before its rows
    by_mask, by_index = predict_rows(garch, X, valid), predict_rows(garch, X, rows)
    pd.testing.assert_series_equal(by_mask, by_index)


def test_every_tree_model_and_engine_repeats_a_run_byte_for_byte(tmp_path: Path) -> None:
    cfg = yaml.safe_load(TINY.read_text())
    forest = {"n_estimators": 20, "max_depth": 4, "min_samples_leaf": 20}
    cfg["models"] += [
        {"name": "random_forest", "label": "rf_lightgbm", "params": forest},
        {"name": "random_forest", "label": "rf_sklearn", "params": {**forest, "engine": "sklearn"}},
    ]
    runs = [run_experiment(cfg, out=tmp_path / name) for name in ("a", "b")]
    files = [(r.run_dir / "predictions.parquet").read_bytes() for r in runs]
    assert files[0] == files[1]
    models = set(runs[0].predictions["model"])
    assert {"lightgbm", "xgboost", "rf_lightgbm", "rf_sklearn"} <= models


def test_float32_matrix_of_mixed_columns() -> None:
    idx = pd.MultiIndex.from_product(
        [pd.bdate_range("2024-01-01", periods=5000), ["A", "B"]], names=["timestamp", "symbol"]
    )
    n = len(idx)
    X = pd.DataFrame(
        {
            "f": np.linspace(-1, 1, n),
            "i": np.arange(n, dtype=np.int64),
            "na": pd.array([None if k % 7 == 0 else k / 3 for k in range(n)], dtype="Float64"),
        },
        index=idx,
    )
    got = float32_features(X)  # several pandas blocks, pd.NA, more rows than one cast block
    expected = np.stack(
        [X["f"].to_numpy(), X["i"].to_numpy(), X["na"].to_numpy(np.float64, na_value=np.nan)],
        axis=1,
    ).astype(np.float32)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(got[::7, 2]).all()
