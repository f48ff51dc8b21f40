"""Tree forecasters: determinism across threads, early stopping, pickle-free forest format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor

from alphaforge.models.trees import (
    LightGBMForecaster,
    PackedForest,
    RandomForestForecaster,
    XGBoostForecaster,
)
from alphaforge.testing import tiny_problem


def _split(X: pd.DataFrame, y: pd.Series, frac: float = 0.7):
    stamps = X.index.get_level_values("timestamp")
    cut = np.unique(stamps)[int(frac * stamps.nunique())]
    train = stamps < cut
    return (X[train], y[train]), (X[~train], y[~train])


@pytest.mark.parametrize("cls", [LightGBMForecaster, XGBoostForecaster])
def test_gbdt_identical_across_thread_counts(cls) -> None:
    X, y = tiny_problem(n_symbols=40, n_bars=400, n_features=8, seed=4)  # 16k rows: real threads
    (X_tr, y_tr), valid = _split(X, y)
    params = {**cls.test_params(), "n_estimators": 60, "subsample": 0.7, "colsample_bytree": 0.7}
    preds = [
        cls.from_params({**params, "n_jobs": n_jobs}, random_state=3)
        .fit(X_tr, y_tr, valid=valid)
        .predict(X)
        for n_jobs in (1, 2, 2)
    ]
    np.testing.assert_array_equal(preds[0].to_numpy(), preds[1].to_numpy())
    np.testing.assert_array_equal(preds[1].to_numpy(), preds[2].to_numpy())
    other_seed = cls.from_params({**params, "n_jobs": 1}, random_state=4).fit(X_tr, y_tr)
    assert not np.array_equal(other_seed.predict(X).to_numpy(), preds[0].to_numpy())


@pytest.mark.parametrize("cls", [LightGBMForecaster, XGBoostForecaster])
def test_early_stopping_stops_before_the_cap(cls) -> None:
    # labels are pure noise: validation loss rises after a few rounds at a high learning rate
    X, _ = tiny_problem(n_symbols=8, n_bars=200, n_features=6, seed=5)
    y = pd.Series(np.random.default_rng(0).standard_normal(len(X)), index=X.index)
    (X_tr, y_tr), valid = _split(X, y)
    params = {
        **cls.test_params(),
        "n_estimators": 400,
        "learning_rate": 0.3,
        "early_stopping_rounds": 10,
    }
    model = cls.from_params(params).fit(X_tr, y_tr, valid=valid)
    assert model.best_iteration_ < 100
    assert model.best_score_ is not None
    without = cls.from_params(params).fit(X_tr, y_tr)  # no valid window: every round
    assert without.best_iteration_ == 400 and without.best_score_ is None


@pytest.mark.parametrize("cls", [LightGBMForecaster, XGBoostForecaster])
def test_gbdt_learns_signal_and_ranks_it_first(cls, return_panel) -> None:
    X, y = return_panel
    (X_tr, y_tr), (X_te, y_te) = _split(X, y)
    model = cls.from_params({**cls.test_params(), "n_estimators": 50}).fit(X_tr, y_tr)
    assert model.feature_importances_.idxmax() == "signal"
    assert model.predict(X_te).corr(y_te) > 0.1


def test_gbdt_native_files(tmp_path: Path, return_panel) -> None:
    X, y = return_panel
    LightGBMForecaster.from_params(LightGBMForecaster.test_params()).fit(X, y).save(tmp_path / "l")
    XGBoostForecaster.from_params(XGBoostForecaster.test_params()).fit(X, y).save(tmp_path / "x")
    assert sorted(p.name for p in (tmp_path / "l").iterdir()) == ["meta.json", "model.txt"]
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["meta.json", "model.json"]


def _forest_problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 5))
    X[rng.random(X.shape) < 0.1] = np.nan  # NaN in training, in every feature
    y = np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1]) ** 2 + rng.standard_normal(2000)
    X_new = rng.standard_normal((500, 5))
    X_new[rng.random(X_new.shape) < 0.2] = np.nan
    return X, y, X_new


def test_packed_forest_equals_sklearn_with_nan(tmp_path: Path) -> None:
    X, y, X_new = _forest_problem()
    forest = RandomForestRegressor(
        25,
        max_depth=8,
        min_samples_leaf=5,
        max_features=0.6,
        max_samples=0.5,
        random_state=0,
        n_jobs=2,
    ).fit(X, y)
    packed = PackedForest.from_sklearn(forest)
    sequential = sum(tree.predict(X_new) for tree in forest.estimators_) / 25
    np.testing.assert_array_equal(packed.predict(X_new), sequential)  # bit for bit
    np.testing.assert_allclose(packed.predict(X_new), forest.predict(X_new), rtol=1e-12)
    (tmp_path / "forest.npz").write_bytes(packed.to_bytes())
    loaded = PackedForest.from_file(tmp_path / "forest.npz")
    np.testing.assert_array_equal(loaded.predict(X_new), sequential)


def test_forest_nan_only_at_predict_time() -> None:
    # features without NaN in training still route NaN at predict, the way sklearn does
    X, y, X_new = _forest_problem()
    X = np.nan_to_num(X)
    forest = RandomForestRegressor(10, max_depth=6, random_state=1).fit(X, y)
    expected = sum(tree.predict(X_new) for tree in forest.estimators_) / 10
    np.testing.assert_array_equal(PackedForest.from_sklearn(forest).predict(X_new), expected)


def test_random_forest_forecaster_round_trip(tmp_path: Path, return_panel) -> None:
    X, y = return_panel
    model = RandomForestForecaster.from_params(RandomForestForecaster.test_params()).fit(X, y)
    model.save(tmp_path / "rf")
    assert sorted(p.name for p in (tmp_path / "rf").iterdir()) == ["forest.npz", "meta.json"]
    with np.load(tmp_path / "rf" / "forest.npz", allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)
    loaded = RandomForestForecaster.load(tmp_path / "rf")
    pd.testing.assert_series_equal(loaded.predict(X), model.predict(X), check_exact=True)
    assert model.feature_importances_.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("cls", [LightGBMForecaster, XGBoostForecaster, RandomForestForecaster])
def test_search_space_gives_valid_configs(cls) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        params = cls.search_space(study.ask())
        assert params and set(params) <= {f for f in cls.Config.__dataclass_fields__}
        cls.from_params(params)  # validates types and ranges
