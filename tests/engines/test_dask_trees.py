"""Trees on the Dask engine: the in-memory models' parameters through ``lightgbm.dask`` and
``xgboost.dask``. One worker: the in-memory predictions exactly; several: the documented
tolerance (see ``alphaforge.engines.dask_trees``), the same on every run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaforge.data import synthetic_panel
from alphaforge.engines.cluster import ClusterSpec, connect
from alphaforge.engines.dask_features import build_feature_dataset
from alphaforge.engines.dask_trees import (
    DaskLightGBMForecaster,
    DaskXGBoostForecaster,
    choose_round,
    fit_on_dataset,
)
from alphaforge.errors import ConfigError
from alphaforge.features import build_features
from alphaforge.labels import LabelSpec, make_label
from alphaforge.models.base import BaseForecaster
from alphaforge.models.trees import LightGBMForecaster, XGBoostForecaster

PAIRS = {
    "lightgbm": (
        LightGBMForecaster,
        DaskLightGBMForecaster,
        {"num_leaves": 7, "min_child_samples": 30},
    ),
    "xgboost": (XGBoostForecaster, DaskXGBoostForecaster, {"max_depth": 3}),
}


@pytest.fixture(scope="module")
def problem() -> dict[str, object]:
    panel = synthetic_panel(n_symbols=20, n_bars=360, seed=1, strength=0.2)
    X = build_features(panel, ["ret_1", "ret_5", "rv_20", "rsi_14", "volume_z_20"])
    y = make_label(panel, "forward_return", 1)
    ts = X.index.get_level_values("timestamp")
    cut = ts.unique()
    masks = {
        "train": np.asarray(ts <= cut[220]),
        "valid": np.asarray((ts > cut[221]) & (ts <= cut[290])),
        "test": np.asarray(ts > cut[291]),
    }
    return {"panel": panel, "X": X, "y": y, **masks}


def _fit(cls, params, p, seed: int = 3):
    X, y, tr, va = p["X"], p["y"], p["train"], p["valid"]
    model = cls.from_params({"n_estimators": 120, "learning_rate": 0.05, **params}, seed)
    return model.fit(X[tr], y[tr], valid=(X[va], y[va]))


@pytest.mark.parametrize("metric", ["loss", "rank_ic"])
@pytest.mark.parametrize("name", list(PAIRS))
def test_one_worker_equals_in_memory(name: str, metric: str, problem) -> None:
    memory_cls, dask_cls, params = PAIRS[name]
    params = {**params, "early_stopping_metric": metric, "early_stopping_rounds": 15}
    want = _fit(memory_cls, params, problem)
    with connect(ClusterSpec(workers=1, processes=False)):
        got = _fit(dask_cls, params, problem)
    assert got.best_iteration_ == want.best_iteration_ < 120  # early stopping did stop
    # LightGBM scores its valid loss on float32 labels, this on float64 ones
    np.testing.assert_allclose(got.best_score_, want.best_score_, rtol=1e-6)
    X_test = problem["X"][problem["test"]]
    np.testing.assert_allclose(got.predict(X_test), want.predict(X_test), rtol=1e-9, atol=0)
    pd.testing.assert_series_equal(got.feature_importances_, want.feature_importances_)


def _rank_ic(pred: np.ndarray, y: pd.Series) -> float:
    frame = pd.DataFrame({"p": pred, "y": y.to_numpy()}, index=y.index).dropna()
    by = frame.groupby(level="timestamp")
    return float(by.apply(lambda g: g["p"].rank().corr(g["y"].rank())).mean())


def test_two_workers_within_tolerance_and_saved_as_plain_models(problem, tmp_path: Path) -> None:
    X_test, y_test = problem["X"][problem["test"]], problem["y"][problem["test"]]
    for name in PAIRS:
        memory_cls, dask_cls, params = PAIRS[name]
        want = _fit(memory_cls, params, problem).predict(X_test)
        # worker processes on loopback TCP: the libraries' own sockets stay on 127.0.0.1
        with connect(ClusterSpec(workers=2, processes=True)):
            model = _fit(dask_cls, params, problem)
            again = _fit(dask_cls, params, problem).predict(X_test)
        got = model.predict(X_test)
        # the documented several-worker tolerance (bins from each worker's rows)
        assert np.corrcoef(got, want)[0, 1] >= 0.6
        assert abs(_rank_ic(got, y_test) - _rank_ic(want, y_test)) <= 0.05
        if name == "xgboost":  # XGBoost ranks its workers the same way every run
            np.testing.assert_array_equal(got, again)
        # what is saved is a plain model of the registry: it loads and predicts without Dask
        loaded = BaseForecaster.load(model.save(tmp_path / name))
        assert type(loaded) is memory_cls
        np.testing.assert_array_equal(loaded.predict(X_test), got)


def test_fit_on_a_feature_dataset(problem, tmp_path: Path) -> None:
    panel = problem["panel"]
    stamps = panel.index.get_level_values("timestamp").unique()
    columns = ["ret_1", "ret_5", "rv_20", "rsi_14", "volume_z_20"]
    with connect(ClusterSpec(workers=1, processes=False)) as client:
        build_feature_dataset(
            panel,
            tmp_path / "ds",
            columns,
            cross_section=False,
            label=LabelSpec(),
            partition_rows=2000,
            client=client,
        )
        model = DaskLightGBMForecaster.from_params({"n_estimators": 60, "subsample": 1.0}, 3)
        fit_on_dataset(
            model,
            tmp_path / "ds",
            train=(stamps[0], stamps[220]),
            valid=(stamps[222], stamps[290]),
            features=columns,
        )
    # the same rows in memory; the dataset's row order (parts of whole symbols) differs, so the
    # float sums of the histograms do too: near, not bit-identical
    X, y, tr, va = problem["X"][columns], problem["y"], problem["train"], problem["valid"]
    ref = LightGBMForecaster.from_params({"n_estimators": 60, "subsample": 1.0}, 3)
    ref.fit(X[tr], y[tr], valid=(X[va], y[va]))
    X_test = X[problem["test"]]
    assert model.label_ == LabelSpec() and model.feature_names_in_ == columns
    assert np.corrcoef(model.predict(X_test), ref.predict(X_test))[0, 1] > 0.99


def test_choose_round_follows_early_stopping() -> None:
    scores = [5.0, 4.0, 4.5, 3.0, 3.5, 3.2, 3.1, 3.0, 2.0]
    seen: list[int] = []
    assert choose_round(scores, 3, False, lambda i, s: seen.append(i)) == (4, 3.0)
    assert seen == [0, 1, 2, 3, 4, 5, 6]  # stopped 3 rounds after the best (ties do not count)
    assert choose_round(scores, None, False) == (9, 2.0)  # no early stopping: every round
    assert choose_round([0.1, 0.3, 0.2], 5, True) == (2, 0.3)


def test_without_a_client_the_error_says_how_to_get_one(problem) -> None:
    with pytest.raises(ConfigError, match="need a Dask client"):
        _fit(DaskXGBoostForecaster, {"max_depth": 2}, problem)
