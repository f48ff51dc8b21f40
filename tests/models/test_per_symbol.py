"""PerSymbolForecaster: one model per symbol with its tuned params from hyperparams/best."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaforge.errors import ConfigError, DataError
from alphaforge.models.base import BaseForecaster, Capabilities
from alphaforge.models.per_symbol import PerSymbolForecaster, symbol_rows
from alphaforge.models.trees import LightGBMForecaster
from alphaforge.testing import tiny_problem
from alphaforge.utils.io import safe_filename

# the config's own member params; n_estimators overlaps with the tuned records and wins
OWN = {"n_estimators": 20, "learning_rate": 0.1, "min_child_samples": 10, "n_jobs": 1}
TUNED = {
    "S00": {"num_leaves": 4, "n_estimators": 200, "reg_lambda": 5.0},
    "S01": {"num_leaves": 11, "n_estimators": 3, "colsample_bytree": 0.5},
}  # S02 has no record


@pytest.fixture(scope="module")
def panel() -> tuple[pd.DataFrame, pd.Series, np.ndarray, np.ndarray]:
    X, y = tiny_problem(n_symbols=3, n_bars=180, n_features=5, seed=3)
    stamps = X.index.get_level_values("timestamp")
    cut, end = stamps.unique()[100], stamps.unique()[140]
    return X, y, np.asarray(stamps <= cut), np.asarray((stamps > cut) & (stamps <= end))


def write_record(root: Path, symbol: str, record: object) -> Path:
    """One tuner-style record at ``root/<safe_filename(symbol)>.json``."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{safe_filename(symbol)}.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


@pytest.fixture
def best(tmp_path: Path) -> Path:
    root = tmp_path / "hyperparams" / "best"
    for symbol, params in TUNED.items():
        record = {"symbol": symbol, "model": "lightgbm", "params": params, "val_score": 0.01}
        write_record(root, symbol, record)
    return root


def fit(model: PerSymbolForecaster, panel) -> PerSymbolForecaster:
    X, y, train, valid = panel
    return model.fit(X[train], y[train], valid=(X[valid], y[valid]))


def wrapper(params_from: Path | None) -> PerSymbolForecaster:
    member = {"name": "lightgbm", "params": OWN}
    cfg = {"member": member, "params_from": None if params_from is None else str(params_from)}
    return PerSymbolForecaster.from_params(cfg, random_state=7)


# ----------------------------------------------------------------------------- params in use
def test_each_symbol_uses_its_tuned_params_under_the_config_params(panel, best, caplog):
    with caplog.at_level(logging.WARNING, logger="alphaforge.models.per_symbol"):
        model = fit(wrapper(best), panel)
    assert sorted(model.models_) == ["S00", "S01", "S02"]
    for symbol in ("S00", "S01"):
        assert model.params_[symbol] == {**TUNED[symbol], **OWN}
        assert model.params_source_[symbol] == str(best / f"{symbol}.json")
    assert model.models_["S00"].config_.num_leaves == 4
    assert model.models_["S01"].config_.num_leaves == 11
    assert model.models_["S01"].config_.colsample_bytree == 0.5
    # overlap: the config's n_estimators (20), not the tuned 200 or 3
    assert {m.config_.n_estimators for m in model.models_.values()} == {20}
    # no record for S02: the member's own params, and one warning naming symbol and file
    assert model.params_["S02"] == OWN and model.params_source_["S02"] is None
    assert model.models_["S02"].config_.num_leaves == 31
    missing = [r.getMessage() for r in caplog.records if "S02" in r.getMessage()]
    assert len(missing) == 1 and str(best / "S02.json") in missing[0]


def test_without_params_from_every_symbol_gets_the_member_params(panel):
    model = fit(wrapper(None), panel)
    assert model.params_ == {s: OWN for s in ("S00", "S01", "S02")}
    assert set(model.params_source_.values()) == {None}


def test_predictions_equal_the_member_fitted_on_each_symbol_alone(panel, best):
    X, y, train, valid = panel
    pred = fit(wrapper(best), panel).predict(X)
    for symbol, rows in symbol_rows(X.index).items():
        Xs, ys, t, v = X.iloc[rows], y.iloc[rows], train[rows], valid[rows]
        alone = LightGBMForecaster.from_params({**TUNED.get(symbol, {}), **OWN}, random_state=7)
        alone.fit(Xs[t], ys[t], valid=(Xs[v], ys[v]))
        expected = alone.predict(Xs).to_numpy()
        assert np.array_equal(pred.iloc[rows].to_numpy(), expected), symbol


def test_symbol_rows_groups_positions_in_row_order(panel):
    X = panel[0]
    groups = symbol_rows(X.index)
    symbols = X.index.get_level_values("symbol")
    for symbol, rows in groups.items():
        naive = [i for i, s in enumerate(symbols) if s == symbol]
        assert rows.tolist() == naive
    assert sum(len(r) for r in groups.values()) == len(X)


# ----------------------------------------------------------------------------- bad records
@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({"model": "xgboost", "params": {"max_depth": 2}}, "for model 'xgboost'"),
        ({"symbol": "S01", "params": {"num_leaves": 4}}, "for symbol 'S01'"),
        ({"model": "lightgbm"}, "'params' object"),
        ([1, 2], "JSON object"),
        ({"params": {"no_such_param": 1}}, "no_such_param"),
        ({"params": {"num_leaves": "many"}}, "num_leaves"),
    ],
)
def test_a_bad_record_is_a_data_error_naming_its_file(panel, tmp_path, record, match):
    path = write_record(tmp_path / "best", "S00", record)
    with pytest.raises(DataError, match=match) as info:
        fit(wrapper(tmp_path / "best"), panel)
    assert str(path) in str(info.value)


def test_unreadable_record_and_missing_directory(panel, tmp_path):
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "S01.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="S01.json"):
        fit(wrapper(tmp_path / "best"), panel)
    with pytest.raises(DataError, match="not a directory"):
        fit(wrapper(tmp_path / "nowhere"), panel)


def test_members_that_cannot_be_fitted_per_symbol(panel, monkeypatch):
    with pytest.raises(ConfigError, match="ensembles of ensembles"):
        PerSymbolForecaster.from_params({"member": "weighted"})
    with pytest.raises(ConfigError, match="params_from"):
        PerSymbolForecaster.from_params({"params_from": ""})
    caps = Capabilities(family="tree", cross_sectional=True)
    monkeypatch.setattr(LightGBMForecaster, "capabilities", caps)
    with pytest.raises(ConfigError, match="cross-sectional"):
        fit(wrapper(None), panel)


# ----------------------------------------------------------------------------- predict / save
def test_unseen_symbol_at_predict_is_a_data_error(panel, best):
    X, y, train, valid = panel
    seen = np.asarray(X.index.get_level_values("symbol") != "S02")
    model = wrapper(best).fit(X[train & seen], y[train & seen], valid=(X[valid], y[valid]))
    assert sorted(model.models_) == ["S00", "S01"]
    with pytest.raises(DataError, match="S02"):
        model.predict(X)
    assert model.predict(X[seen]).notna().all()


def test_save_load_round_trip_keeps_models_and_params_in_use(panel, tmp_path):
    X, y, train, valid = panel
    X = X.rename(index={"S00": "BRK.B"}, level="symbol")  # a symbol that is no plain file name
    y = y.set_axis(X.index)
    best = tmp_path / "best"
    write_record(best, "BRK.B", {"model": "lightgbm", "params": {"num_leaves": 5}})
    model = wrapper(best).fit(X[train], y[train], valid=(X[valid], y[valid]))
    path = model.save(tmp_path / "model")
    for d in best.iterdir():  # a loaded model never re-reads the records
        d.unlink()
    loaded = BaseForecaster.load(path)
    assert isinstance(loaded, PerSymbolForecaster)
    assert (path / safe_filename("BRK.B") / "meta.json").is_file()
    assert loaded.params_ == model.params_ and loaded.params_source_ == model.params_source_
    assert loaded.params_["BRK.B"] == {"num_leaves": 5, **OWN}
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    assert meta["state"]["params_source"]["BRK.B"] == str(best / f"{safe_filename('BRK.B')}.json")
    assert np.array_equal(loaded.predict(X).to_numpy(), model.predict(X).to_numpy())


def test_is_not_a_blend():
    assert PerSymbolForecaster.member_keys({"member": "lightgbm"}) == []
