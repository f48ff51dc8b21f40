"""Ensembles: out-of-fold honesty, fusion weights, residual stacking, blends, config and run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from alphaforge.config import load_config
from alphaforge.errors import ConfigError, DataError
from alphaforge.metrics import evaluate
from alphaforge.models.ensemble import (
    FusionForecaster,
    ResidualForecaster,
    WeightedForecaster,
    fit_fusion,
    parse_member,
    walk_forward_predict,
)
from alphaforge.registry import get_model
from alphaforge.testing import check_forecaster, tiny_problem

TINY_LGB = {
    "n_estimators": 30,
    "learning_rate": 0.1,
    "num_leaves": 7,
    "min_child_samples": 10,
    "n_jobs": 1,
}


# ----------------------------------------------------------------------------- out of fold
def test_walk_forward_predict_never_predicts_bars_seen_in_fit(monkeypatch):
    from alphaforge.models.trees import LightGBMForecaster

    X, y = tiny_problem(n_symbols=4, n_bars=200)
    fits = []
    real_fit = LightGBMForecaster.fit

    def spy(self, X_, y_, *, valid=None, label=None):
        fits.append(
            (X_.index.get_level_values("timestamp"), valid[0].index.get_level_values("timestamp"))
        )
        return real_fit(self, X_, y_, valid=valid, label=label)

    monkeypatch.setattr(LightGBMForecaster, "fit", spy)
    oof = walk_forward_predict(
        [{"name": "lightgbm", "params": TINY_LGB}], X, y, n_folds=3, purge=2, stop_frac=0.25
    )
    assert sorted(oof["fold"].unique()) == [0, 1, 2] and len(fits) == 3
    stamps = np.unique(X.index.get_level_values("timestamp")[y.notna().to_numpy()])
    for k, (fit_ts, stop_ts) in enumerate(fits):
        block = oof[oof["fold"] == k].index.get_level_values("timestamp")
        pos = np.searchsorted(stamps, [fit_ts.max(), stop_ts.min(), stop_ts.max(), block.min()])
        assert pos[0] + 2 < pos[1]  # purge of 2 timestamps between fitting and stopping rows
        assert pos[2] + 2 < pos[3]  # and between stopping rows and the predicted block
    first = oof.index.get_level_values("timestamp").min()
    assert first > stamps[len(stamps) // 4 - 1]  # block 0 is only ever trained on
    assert np.allclose(oof["y"], y.reindex(oof.index))


def test_walk_forward_predict_too_few_bars():
    X, y = tiny_problem(n_symbols=2, n_bars=25)
    with pytest.raises(DataError, match="too few"):
        walk_forward_predict(["lightgbm"], X, y, n_folds=10, purge=3)


# ----------------------------------------------------------------------------- fusion
def test_fit_fusion_methods():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(500, 3)) * [0.01, 1.0, 100.0]  # scale must not matter
    y = P @ [2.0, -0.5, 0.003] + 0.1 + 0.01 * rng.normal(size=500)
    w, b = fit_fusion(P, y, "ols")
    assert np.allclose(w, [2.0, -0.5, 0.003], rtol=0.05) and abs(b - 0.1) < 0.01
    w_nn, _ = fit_fusion(P, y, "nnls")
    assert (w_nn >= 0).all() and w_nn[1] == 0.0  # the negative weight is clipped to zero
    w_r, _ = fit_fusion(P, y, "ridge", alpha=1e4)
    assert np.abs(w_r * P.std(axis=0)).sum() < np.abs(w * P.std(axis=0)).sum()  # shrunk
    w_c, b_c = fit_fusion(P, y, "nnls", sum_to_one=True)
    assert (w_c >= 0).all() and np.isclose(w_c.sum(), 1.0)
    with pytest.raises(ConfigError, match="sum_to_one"):
        fit_fusion(P, y, "ridge", sum_to_one=True)
    with pytest.raises(DataError, match="finite"):
        fit_fusion(np.full((5, 2), np.nan), np.zeros(5))
    with pytest.raises(DataError, match="more rows"):
        fit_fusion(P[:2], y[:2])


def test_fusion_learns_leak_free_weights_where_in_sample_fusion_is_fooled():
    """A deep forest on pure-noise columns memorises the training labels. Fitted on in-sample
    predictions the fusion trusts it; fitted on out-of-fold predictions it is ignored."""
    X, y = tiny_problem(n_symbols=8, n_bars=300, seed=0)
    rng = np.random.default_rng(0)
    junk = [f"junk_{i}" for i in range(4)]
    for c in junk:
        X[c] = rng.normal(size=len(X))
    overfit = {
        "name": "random_forest",
        "label": "overfit",
        "features": junk,
        "params": {
            "n_estimators": 30,
            "max_depth": None,
            "min_samples_leaf": 1,
            "max_features": 1.0,
            "max_samples": None,
            "n_jobs": 1,
        },
    }
    good = {
        "name": "last_value",
        "label": "good",
        "params": {"column": "signal", "fill_value": 0.0},
    }
    fusion = FusionForecaster.from_params(
        {"members": [good, overfit], "method": "ols", "inner_folds": 3}
    ).fit(X, y)
    # contribution of a member = |weight| x the spread of its predictions
    oof = (fusion.weights_ * fusion.oof_[["good", "overfit"]].std()).abs()
    labelled = y.notna().to_numpy()
    insample = fusion.member_predictions(X)[labelled]
    w_in, _ = fit_fusion(insample.to_numpy(), y[labelled].to_numpy(), "ols")
    ins = pd.Series(np.abs(w_in) * insample.std().to_numpy(), index=["good", "overfit"])
    assert oof["overfit"] < 0.1 * oof["good"]  # out of fold: near-zero weight
    assert ins["overfit"] > 5 * ins["good"]  # in sample: the memoriser takes over


# ----------------------------------------------------------------------------- residual
def _two_part_panel(
    seed: int, n_symbols: int = 8, n_bars: int = 300
) -> tuple[pd.DataFrame, pd.Series]:
    """y = 0.4 x0 + 0.8 [x2 > 0.5][x3 < 0]   (current bar: a linear part and a threshold
    interaction, what trees fit) + 0.5 |x1 one bar earlier|   (nonlinear and sequential: no
    current-bar column carries it, a lookback window does) + noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(5, n_bars, n_symbols))
    seq = np.zeros_like(x[0])
    seq[1:] = np.abs(x[1][:-1])
    y = 0.4 * x[0] + 0.8 * ((x[2] > 0.5) & (x[3] < 0)) + 0.5 * seq
    y = y + 0.3 * rng.normal(size=y.shape)
    idx = pd.MultiIndex.from_product(
        [pd.bdate_range("2020-01-01", periods=n_bars), [f"S{i:02d}" for i in range(n_symbols)]],
        names=["timestamp", "symbol"],
    )
    X = pd.DataFrame({f"x{i}": x[i].ravel() for i in range(5)}, index=idx)
    return X, pd.Series(y.ravel(), index=idx, name="y")


@pytest.mark.parametrize("seed", [0, 1])
def test_residual_stack_beats_both_members(seed):
    X, y = _two_part_panel(seed)
    ts = X.index.get_level_values("timestamp")
    u = ts.unique()
    train, valid, test = ts < u[200], (ts > u[200]) & (ts < u[240]), ts > u[240]
    lgb = {
        "name": "lightgbm",
        "params": {**TINY_LGB, "n_estimators": 300, "learning_rate": 0.05, "min_child_samples": 20},
    }
    lstm = {
        "name": "lstm",
        "params": {
            "lookback": 5,
            "hidden": 16,
            "max_epochs": 15,
            "batch_size": 64,
            "patience": 3,
            "lr": 1e-2,
        },
    }
    models = {
        "lightgbm": get_model("lightgbm").from_params(lgb["params"]),
        "lstm": get_model("lstm").from_params(lstm["params"]),
        "residual": ResidualForecaster.from_params(
            {"base": lgb, "residual": lstm, "inner_folds": 4}
        ),
    }
    scores = {}
    for name, model in models.items():
        model.fit(X[train], y[train], valid=(X[valid], y[valid]))
        pred = model.predict(X).reindex(X.index[test])
        scores[name] = evaluate(y[test], pred, ["mae", "rank_ic"], label_kind="return")
    res = scores.pop("residual")
    for name, s in scores.items():
        assert res["mae"] < s["mae"], (name, scores, res)
        assert res["rank_ic"] > s["rank_ic"], (name, scores, res)
    comp = models["residual"].components(X[test])
    assert np.allclose(comp["final"], comp["base"] + comp["residual"])


def test_residual_with_sequence_member_passes_contract():
    lstm = {
        "name": "lstm",
        "params": {"lookback": 4, "hidden": 4, "n_layers": 1, "max_epochs": 2, "batch_size": 64},
    }
    check_forecaster(
        lambda: ResidualForecaster.from_params(
            {"base": {"name": "lightgbm", "params": TINY_LGB}, "residual": lstm, "inner_folds": 2},
            random_state=0,
        )
    )


# ----------------------------------------------------------------------------- weighted
def test_weighted_blend_and_rank_average():
    X, y = tiny_problem(n_symbols=6, n_bars=160)
    members = [
        {"name": "last_value", "label": "a", "params": {"column": "signal"}},
        {"name": "last_value", "label": "b", "params": {"column": "ret_1"}},
    ]
    blend = WeightedForecaster.from_params({"members": members, "weights": (1.0, 3.0)}).fit(X, y)
    assert np.allclose(blend.weights_, [0.25, 0.75])
    pred = blend.predict(X)
    assert np.allclose(pred, 0.25 * X["signal"] + 0.75 * X["ret_1"], equal_nan=True)
    ranked = WeightedForecaster.from_params({"members": members, "rank_average": True}).fit(X, y)
    r = ranked.predict(X).dropna()
    assert r.between(0, 1).all()
    one_day = X.index.get_level_values("timestamp")[-1]
    day = X.xs(one_day, level="timestamp", drop_level=False)
    expect = (day["signal"].rank(pct=True) + day["ret_1"].rank(pct=True)) / 2
    assert np.allclose(ranked.predict(X).loc[day.index], expect)
    with pytest.raises(ConfigError, match="one weight per member"):
        WeightedForecaster.from_params({"members": members, "weights": (1.0,)}).fit(X, y)


def test_member_specs_are_checked():
    assert parse_member("xgboost").key == "xgboost"
    assert parse_member({"name": "lightgbm", "label": "lgb_fast"}).key == "lgb_fast"
    for bad, msg in (
        ("nope", "unknown model"),
        ({"name": "lightgbm", "parms": {}}, "unknown key"),
        ("fusion", "ensembles of ensembles"),
        (3, "model name or a mapping"),
    ):
        with pytest.raises(ConfigError, match=msg):
            parse_member(bad)
    with pytest.raises(ConfigError, match="repeat"):
        FusionForecaster.from_params({"members": ["lightgbm", "lightgbm"]}).fit(
            *tiny_problem(n_bars=60)
        )


# ----------------------------------------------------------------------------- config and run
ENSEMBLE_YAML = """
name: tiny-ensemble
seed: 0
data: {source: "synthetic:n_symbols=8,n_bars=420,seed=1,strength=0.15"}
label: {kind: forward_return, horizon: 1}
split: {train: 250, valid: 40, test: 40, n_folds: 2}
models:
  - {name: lightgbm, params: {n_estimators: 40, num_leaves: 7, min_child_samples: 20, n_jobs: 1}}
  - {name: xgboost, params: {n_estimators: 40, max_depth: 3, n_jobs: 1}}
  - {name: random_forest, params: {n_estimators: 20, max_depth: 4, min_samples_leaf: 20, n_jobs: 1}}
ensembles:
  - {name: stack, kind: residual, base: lightgbm, residual: xgboost, inner_folds: 2}
  - {name: blend, kind: fusion, members: [lightgbm, xgboost, random_forest], method: nnls,
     sum_to_one: true, inner_folds: 2}
  - {name: fixed, kind: weighted, members: {random_forest: 0.3, xgboost: 0.4, lightgbm: 0.3}}
"""


def test_config_ensembles_resolve_members(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(ENSEMBLE_YAML)
    cfg = load_config(path)
    stack, blend, fixed = cfg.ensemble_models()
    assert (stack.name, stack.display) == ("residual", "stack")
    assert stack.params["base"]["params"]["n_estimators"] == 40  # the models entry's params
    assert stack.params["purge"] == 1  # the label horizon
    assert fixed.params["weights"] == [0.3, 0.4, 0.3]
    bad = {
        "do not apply": ENSEMBLE_YAML.replace(
            "inner_folds: 2}", "inner_folds: 2, method: ridge}", 1
        ),
        "unknown model": ENSEMBLE_YAML.replace(
            "[lightgbm, xgboost, random_forest]", "[lightgbm, nope]"
        ),
    }
    for msg, text in bad.items():
        path.write_text(text)
        with pytest.raises(ConfigError, match=msg):
            load_config(path)
    path.write_text(ENSEMBLE_YAML.replace("name: fixed", "name: lightgbm"))
    with pytest.raises(ConfigError, match="duplicate"):
        load_config(path)


def test_run_with_ensembles_writes_components_weights_and_comparison(tmp_path):
    from alphaforge.cli import app

    path = tmp_path / "e.yaml"
    path.write_text(ENSEMBLE_YAML)
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert "ensembles vs their best member" in res.output and "fusion weights" in res.output
    run = tmp_path / "run"
    preds = pd.read_parquet(run / "predictions.parquet")
    test = preds[preds["split"] == "test"]
    rows = {m: set(zip(g["timestamp"], g["symbol"], strict=True)) for m, g in test.groupby("model")}
    assert rows["stack"] == rows["blend"] == rows["fixed"] == rows["lightgbm"]  # same bars
    comp = pd.read_parquet(run / "ensemble_components.parquet")
    assert set(comp["split"]) == {"train", "valid", "test"} and set(comp["model"]) == {"stack"}
    assert np.allclose(comp["final"], comp["base"] + comp["residual"])
    stack_test = test[test["model"] == "stack"].set_index(["timestamp", "symbol", "fold"])
    ct = comp[comp["split"] == "test"].set_index(["timestamp", "symbol", "fold"])
    assert np.allclose(ct["final"], stack_test["y_pred"].reindex(ct.index))
    weights = json.loads((run / "fusion_weights.json").read_text())["blend"]
    for fold in weights.values():
        w = np.array(list(fold["weights"].values()))
        assert (w >= 0).all() and np.isclose(w.sum(), 1.0)
    metrics = json.loads((run / "metrics.json").read_text())["models"]
    vs = metrics["fixed"]["vs_best_member"]
    assert vs["rank_ic"]["best_member"] in ("lightgbm", "xgboost", "random_forest")
    assert np.isclose(vs["rank_ic"]["diff"], vs["rank_ic"]["ensemble"] - vs["rank_ic"]["best"])
    assert metrics["blend"]["ensemble"] == {
        "kind": "fusion",
        "members": ["lightgbm", "xgboost", "random_forest"],
    }
    assert (run / "models" / "stack" / "fold_0" / "base" / "meta.json").exists()
    html = (run / "report.html").read_text()
    assert 'id="ensembles"' in html and "fusion weights (mean over folds)" in html
