"""``early_stopping_metric: rank_ic``: the scorer against naive pandas, and every model using it.

The panel where the two metrics disagree: labels carry a large per-date common shock that a
per-date feature ``m`` predicts in the training window but not in the valid window. Fitting
``m`` lowers the training MSE and raises the valid MSE, and leaves the within-date ranks (what
the Rank IC reads) alone; the cross-sectional signal ``s`` is learned over many more rounds.
So early stopping on the loss stops almost at once, on the Rank IC much later.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphaforge.errors import ConfigError
from alphaforge.metrics import rank_ic
from alphaforge.models.early_stopping import RankIC
from alphaforge.registry import get_model

Panel = tuple[tuple[pd.DataFrame, pd.Series], tuple[pd.DataFrame, pd.Series]]


def shock_panel(n_symbols: int = 20, n_bars: int = 200, seed: int = 0) -> Panel:
    """``(train, valid)``: the last 30% of the bars are the valid window."""
    rng = np.random.default_rng(seed)
    T, N = n_bars, n_symbols
    m = rng.standard_normal(T)  # (T,) per-date feature
    s = rng.standard_normal((T, N))  # (T, N) cross-sectional signal
    cut = int(0.7 * T)
    common = 3.0 * m
    common[cut:] = 3.0 * rng.standard_normal(T - cut)  # valid: the shock no longer follows m
    y = common[:, None] + 0.5 * s + rng.standard_normal((T, N))
    stamps = pd.bdate_range("2020-01-01", periods=T)
    index = pd.MultiIndex.from_product(
        [stamps, [f"S{i:02d}" for i in range(N)]], names=["timestamp", "symbol"]
    )
    X = pd.DataFrame(
        {"m": np.repeat(m, N), "s": s.ravel(), "z": rng.standard_normal(T * N)}, index=index
    )
    labels = pd.Series(y.ravel(), index=index, name="y")
    train = index.get_level_values("timestamp") < stamps[cut]
    return (X[train], labels[train]), (X[~train], labels[~train])


def naive_rank_ic(y: pd.Series, pred: pd.Series) -> float:
    """Per-date pandas Spearman, dates with < 2 labelled rows skipped, constant forecasts 0."""
    df = pd.DataFrame({"y": y, "p": pred}).dropna(subset=["y"])
    per_date = []
    for _, g in df.groupby(level="timestamp"):
        if len(g) < 2 or g["y"].nunique() < 2:
            continue
        per_date.append(0.0 if g["p"].nunique() < 2 else g["p"].corr(g["y"], method="spearman"))
    return float(np.mean(per_date))


def _fit(name: str, data: Panel, metric: str | None, **extra: object) -> tuple[object, list]:
    cls = get_model(name)
    params = {**cls.test_params(), **extra}
    if metric is not None:
        params["early_stopping_metric"] = metric
    seen: list[float] = []
    est = cls.from_params(params, random_state=0)
    est.iteration_callback = lambda i, v: seen.append(v)
    (X, y), valid = data
    return est.fit(X, y, valid=valid), seen


# ---------------------------------------------------------------------------- the scorer
def test_rank_ic_matches_naive_pandas_spearman() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        n = 400
        stamps = rng.integers(0, 40, n)  # unequal cross-sections, some of one row
        index = pd.MultiIndex.from_arrays([stamps, np.arange(n)], names=["timestamp", "symbol"])
        y = np.round(rng.standard_normal(n), 1)  # ties in labels and forecasts
        y[rng.random(n) < 0.05] = np.nan
        pred = np.round(rng.standard_normal(n) + 0.5 * np.nan_to_num(y), 1)
        y_s, p_s = pd.Series(y, index=index), pd.Series(pred, index=index)
        got = RankIC(stamps, y)(pred)
        assert got == pytest.approx(naive_rank_ic(y_s, p_s), rel=1e-9)
        assert got == pytest.approx(rank_ic(y_s, p_s), rel=1e-9)  # no constant forecasts here


def test_rank_ic_constant_dates_and_non_finite_forecasts() -> None:
    stamps = np.repeat([0, 1, 2], 4)
    y = np.array([1, 2, 3, 4, 4, 3, 2, 1, 5, 5, 5, 5], dtype=float)  # date 2: constant labels
    score = RankIC(stamps, y)
    pred = np.array([1, 2, 3, 4, 7, 7, 7, 7, 1, 2, 3, 4], dtype=float)
    assert score(pred) == pytest.approx(0.5)  # date 0: 1, date 1 (flat forecast): 0, date 2 skipped
    assert np.isnan(score(np.where(np.arange(12) == 5, np.nan, pred)))
    with pytest.raises(ConfigError, match="no timestamp of the valid window has 2 or more"):
        RankIC(np.arange(5), np.arange(5.0), model="M")  # one symbol per timestamp


# ---------------------------------------------------------------------------- the models
@pytest.mark.parametrize("name", ["lightgbm", "xgboost"])
def test_gbdt_rank_ic_picks_its_own_round(name: str) -> None:
    data = shock_panel()
    extra = {"n_estimators": 150, "early_stopping_rounds": 20}
    by_loss, _ = _fit(name, data, None, **extra)
    est, seen = _fit(name, data, "rank_ic", **extra)
    ic = -np.asarray(seen)  # the callback gets -rank_ic: lower is better
    assert est.best_iteration_ == int(np.argmax(ic)) + 1  # rounds count from 1
    assert by_loss.best_iteration_ <= 3 < 10 < est.best_iteration_  # the metrics disagree
    X_valid, y_valid = data[1]
    naive = naive_rank_ic(y_valid, est.predict(X_valid))
    assert ic.max() == pytest.approx(naive, rel=1e-9)
    assert est.best_score_ == pytest.approx(naive, rel=1e-9)
    assert naive > naive_rank_ic(y_valid, by_loss.predict(X_valid))


def test_torch_rank_ic_picks_its_own_epoch() -> None:
    data = shock_panel()
    extra = {"max_epochs": 5, "patience": 0, "lr": 3e-3}
    by_loss, _ = _fit("lstm", data, None, **extra)
    est, seen = _fit("lstm", data, "rank_ic", **extra)
    h = est.history_
    # the metric is scored in eval mode after each epoch: training itself is unchanged
    np.testing.assert_array_equal(h["train_loss"], by_loss.history_["train_loss"])
    assert by_loss.history_["valid_metric"].isna().all()
    np.testing.assert_array_equal(-h["valid_metric"].to_numpy(), seen)
    best = int(h["valid_metric"].idxmax())
    assert best != int(h["valid_loss"].idxmin())
    (X, _), (X_valid, y_valid) = data
    pred = est.predict(pd.concat([X, X_valid])).loc[X_valid.index]  # windows need the history
    assert h["valid_metric"][best] == pytest.approx(naive_rank_ic(y_valid, pred), rel=1e-9)


def test_ranker_rank_ic_picks_its_own_epoch() -> None:
    # the ranker's loss is cross-sectional already: it and the Rank IC disagree on this seed
    data = shock_panel(n_symbols=8, n_bars=100, seed=2)
    extra = {"max_epochs": 4, "patience": 0}
    est, seen = _fit("ranker", data, "rank_ic", **extra)
    h = est.history_
    np.testing.assert_array_equal(-h["valid_metric"].to_numpy(), seen)
    best, by_loss = int(h["valid_metric"].idxmax()), int(h["valid_loss"].idxmin())
    assert best != by_loss and h["valid_metric"][best] > h["valid_metric"][by_loss] + 0.01
    (X, _), (X_valid, y_valid) = data
    pred = est.predict(pd.concat([X, X_valid])).loc[X_valid.index]  # the lag-1, h-1 head
    assert h["valid_metric"][best] == pytest.approx(naive_rank_ic(y_valid, pred), rel=1e-9)


def _one_symbol(data: Panel) -> Panel:
    keep = [X.index.get_level_values("symbol") == "S00" for X, _ in data]
    (X, y), (X_valid, y_valid) = data
    return (X[keep[0]], y[keep[0]]), (X_valid[keep[1]], y_valid[keep[1]])


@pytest.mark.parametrize("name", ["lightgbm", "xgboost", "gru", "ranker"])
def test_loss_is_the_default_and_one_symbol_is_an_error(name: str) -> None:
    data = shock_panel(n_symbols=4, n_bars=60)
    tiny = {"max_epochs": 2} if "max_epochs" in get_model(name).test_params() else {}
    default, seen = _fit(name, data, None, **tiny)
    explicit, seen_explicit = _fit(name, data, "loss", **tiny)
    X = pd.concat([data[0][0], data[1][0]])
    np.testing.assert_array_equal(default.predict(X), explicit.predict(X))
    assert seen == seen_explicit and default.get_params()["early_stopping_metric"] == "loss"
    with pytest.raises(ConfigError, match="early_stopping_metric='loss'"):
        _fit(name, _one_symbol(data), "rank_ic", **tiny)
    with pytest.raises(ConfigError, match="early_stopping_metric"):
        get_model(name).from_params({"early_stopping_metric": "ic"})


def test_gpt_has_no_early_stopping_metric() -> None:
    with pytest.raises(ConfigError, match="unknown parameter"):
        get_model("gpt").from_params({"early_stopping_metric": "rank_ic"})
