"""Tree forecasters: determinism across threads and runs, early stopping, native and pickle-free
files, the forest's two engines and its LightGBM parameter mapping."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor

from alphaforge.errors import ConfigError
from alphaforge.models.forest import (
    PackedForest,
    RandomForestConfig,
    RandomForestForecaster,
    lightgbm_rf_params,
)
from alphaforge.models.trees import LightGBMForecaster, XGBoostForecaster
from alphaforge.testing import check_forecaster, tiny_problem

RF = RandomForestForecaster
#: every tree model and engine, with small params that still draw rows and features at random
TREES = {
    "lightgbm": (LightGBMForecaster, {"subsample": 0.7, "colsample_bytree": 0.7}),
    "xgboost": (XGBoostForecaster, {"subsample": 0.7, "colsample_bytree": 0.7}),
    "rf_lightgbm": (RF, {"engine": "lightgbm", "max_features": 0.5, "min_samples_leaf": 20}),
    "rf_sklearn": (RF, {"engine": "sklearn", "max_features": 0.5, "min_samples_leaf": 20}),
}


def _split(X: pd.DataFrame, y: pd.Series, frac: float = 0.7):
    stamps = X.index.get_level_values("timestamp")
    cut = np.unique(stamps)[int(frac * stamps.nunique())]
    train = stamps < cut
    return (X[train], y[train]), (X[~train], y[~train])


@pytest.mark.parametrize("name", sorted(TREES))
def test_trees_identical_across_thread_counts_and_runs(name: str) -> None:
    cls, extra = TREES[name]
    X, y = tiny_problem(n_symbols=40, n_bars=400, n_features=8, seed=4)  # 16k rows: real threads
    (X_tr, y_tr), valid = _split(X, y)
    params = {**cls.test_params(), **extra, "n_estimators": 30}
    preds = [
        cls.from_params({**params, "n_jobs": n_jobs}, random_state=3)
        .fit(X_tr, y_tr, valid=valid)
        .predict(X)
        for n_jobs in (1, 2, -1)
    ]
    for other in preds[1:]:  # byte for byte
        assert preds[0].to_numpy().tobytes() == other.to_numpy().tobytes()
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


@pytest.mark.parametrize(
    ("engine", "native"), [("lightgbm", "model.txt"), ("sklearn", "forest.npz")]
)
def test_random_forest_round_trip_per_engine(tmp_path: Path, return_panel, engine, native) -> None:
    X, y = return_panel
    model = RF.from_params({**RF.test_params(), "engine": engine}).fit(X, y)
    model.save(tmp_path / "rf")
    assert sorted(p.name for p in (tmp_path / "rf").iterdir()) == sorted(["meta.json", native])
    if engine == "sklearn":
        with np.load(tmp_path / "rf" / "forest.npz", allow_pickle=False) as npz:
            assert all(npz[k].dtype != object for k in npz.files)
    else:  # LightGBM's random-forest mode: the file says the trees are averaged
        assert "average_output" in (tmp_path / "rf" / "model.txt").read_text()
    loaded = RF.load(tmp_path / "rf")
    assert loaded.config_.engine == engine
    pd.testing.assert_series_equal(loaded.predict(X), model.predict(X), check_exact=True)
    assert model.feature_importances_.sum() == pytest.approx(1.0)
    pd.testing.assert_series_equal(loaded.feature_importances_, model.feature_importances_)


def test_forest_saved_before_the_lightgbm_engine_loads_as_sklearn(tmp_path: Path, return_panel):
    # the directory a saved sklearn forest had before `engine` existed: forest.npz and a
    # meta.json without checksums whose config and state have no engine
    X, y = return_panel
    labelled = y.notna().to_numpy()
    params = {"n_estimators": 8, "max_depth": 5, "min_samples_leaf": 5, "max_features": 0.5}
    sk = RandomForestRegressor(**params, max_samples=0.5, random_state=7)
    sk.fit(X.to_numpy()[labelled], y[labelled])
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "forest.npz").write_bytes(PackedForest.from_sklearn(sk).to_bytes())
    meta = {
        "format": "alphaforge.model",
        "format_version": 1,
        "model": "random_forest",
        "class": "alphaforge.models.trees:RandomForestForecaster",
        "alphaforge_version": "0.1.0",
        "config": {**params, "max_samples": 0.5, "n_jobs": 1},
        "random_state": 7,
        "seed": 7,
        "feature_names": list(X.columns),
        "label": {},
        "state": {"importances": sk.feature_importances_.tolist()},
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    loaded = RF.load(folder)
    assert loaded.config_.engine == "sklearn" and loaded.get_params()["engine"] == "sklearn"
    expected = sum(tree.predict(X.to_numpy(np.float32)) for tree in sk.estimators_) / 8
    np.testing.assert_array_equal(loaded.predict(X).to_numpy(), expected)
    assert loaded.clone().config.engine == "sklearn"  # a refit stays on the saved engine


def test_sklearn_engine_passes_the_forecaster_contract() -> None:
    check_forecaster(lambda: RF.from_params({**RF.test_params(), "engine": "sklearn"}))


def test_forest_engines_agree_on_a_planted_signal(return_panel) -> None:
    X, y = return_panel
    (X_tr, y_tr), (X_te, y_te) = _split(X, y)
    params = {"n_estimators": 50, "max_depth": 4, "min_samples_leaf": 20, "n_jobs": 1}
    fits = {
        e: RF.from_params({**params, "engine": e}).fit(X_tr, y_tr) for e in ("lightgbm", "sklearn")
    }
    preds = {e: m.predict(X_te) for e, m in fits.items()}
    assert preds["lightgbm"].corr(preds["sklearn"]) > 0.9
    for engine, model in fits.items():
        assert model.feature_importances_.idxmax() == "signal", engine
        assert preds[engine].corr(y_te) > 0.1, engine


def test_lightgbm_rf_parameter_mapping() -> None:
    c = RandomForestConfig(n_estimators=7, max_depth=6, min_samples_leaf=100, max_features=0.3)
    p = lightgbm_rf_params(c, n_rows=60_000, seed=5)
    assert p["boosting"] == "rf" and p["bagging_freq"] == 1
    assert p["bagging_fraction"] == pytest.approx(1 - math.exp(-0.5))  # distinct bootstrap rows
    assert p["num_leaves"] == 64 and p["max_depth"] == 6  # 2**depth: the depth-bounded tree
    assert p["min_data_in_leaf"] == 100 and p["feature_fraction_bynode"] == 0.3
    assert p["lambda_l2"] == 0 and p["deterministic"] and p["force_row_wise"]
    # no depth limit: leaves bounded by what the leaf size allows; a full bootstrap: 0.632
    deep = RandomForestConfig(max_depth=None, min_samples_leaf=50, max_samples=None)
    p = lightgbm_rf_params(deep, n_rows=60_000, seed=5)
    assert p["max_depth"] == -1 and p["num_leaves"] == 1200
    assert p["bagging_fraction"] == pytest.approx(1 - math.exp(-1))
    assert lightgbm_rf_params(RandomForestConfig(max_depth=30), 10**9, 0)["num_leaves"] == 131072


def test_lightgbm_forest_averages_its_trees(return_panel) -> None:
    X, y = return_panel
    model = RF.from_params({**RF.test_params(), "n_estimators": 12}).fit(X, y)
    booster = model.booster_
    assert booster.num_trees() == 12
    A = X.to_numpy(np.float32)
    leaves = booster.predict(A, pred_leaf=True)  # (n_rows, n_trees)
    values = np.stack(
        [[booster.get_leaf_output(k, leaf) for k, leaf in enumerate(row)] for row in leaves[:50]]
    )
    np.testing.assert_allclose(model.predict(X).to_numpy()[:50], values.mean(axis=1), rtol=1e-9)


def test_forest_config_errors() -> None:
    with pytest.raises(ConfigError, match="engine"):
        RF.from_params({"engine": "cuml"})
    for cls in (RF, LightGBMForecaster, XGBoostForecaster):
        with pytest.raises(ConfigError, match="n_jobs"):
            cls.from_params({"n_jobs": 0})


@pytest.mark.parametrize("cls", [LightGBMForecaster, XGBoostForecaster, RandomForestForecaster])
def test_search_space_gives_valid_configs(cls) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        params = cls.search_space(study.ask())
        assert params and set(params) <= {f for f in cls.Config.__dataclass_fields__}
        cls.from_params(params)  # validates types and ranges
