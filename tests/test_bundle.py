"""Bundles: fit on all history, forecast the next bar exactly as the walk-forward fold does."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from alphaforge.bundle import FORMAT_VERSION, fit, load_bundle, predict
from alphaforge.cli import app
from alphaforge.data import load_panel
from alphaforge.errors import ConfigError, DataError
from alphaforge.registry import get_model
from alphaforge.run import run_experiment

DATA = "synthetic:n_symbols=6,n_bars=360,seed=3,strength=0.15"
TINY_LGB = {"n_estimators": 30, "num_leaves": 7, "min_child_samples": 20, "n_jobs": 1}


def _config(models: list[dict], ensembles: list[dict] | None = None) -> dict:
    return {
        "name": "bundle",
        "seed": 0,
        "data": {"source": DATA},
        "label": {"kind": "forward_return", "horizon": 1},
        "split": {"train": 200, "valid": 30, "test": 20, "n_folds": 1},
        "models": models,
        "ensembles": ensembles or [],
    }


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return load_panel(DATA)


@pytest.fixture(scope="module")
def equal_case(tmp_path_factory, panel):
    """A one-fold walk-forward run and a bundle fitted on the bars before its test block."""
    models = [
        {"name": "lightgbm", "params": TINY_LGB},
        {"name": "lstm", "params": get_model("lstm").test_params()},
        {"name": "ranker", "params": get_model("ranker").test_params()},
    ]
    ensembles = [{"name": "blend", "kind": "weighted", "members": ["lightgbm", "lstm"]}]
    cfg = _config(models, ensembles)
    tmp = tmp_path_factory.mktemp("bundle")
    run = run_experiment(cfg, out=tmp / "run")
    test = run.folds[0].test
    grid = panel.index.get_level_values("timestamp").unique().sort_values()
    before = grid[grid.get_loc(pd.Timestamp(test[0])) - 1]  # the bar before the test block
    bundle = fit({**cfg, "data": {"source": DATA, "end": str(before)}})
    bundle.save(tmp / "bundle")
    return run, bundle, tmp


def test_bundle_forecasts_like_the_walk_forward_fold(equal_case, panel):
    run, bundle, _ = equal_case
    preds = run.predictions[run.predictions["split"] == "test"]
    for asof in run.folds[0].test[:3]:  # the first test bars: the fold's model, fresh data
        got = bundle.predict(panel, asof=asof)
        for model in ("lightgbm", "lstm", "ranker", "blend"):
            want = preds[(preds["model"] == model) & (preds["timestamp"] == asof)]
            mine = got[got["model"] == model].set_index("symbol")["y_pred"]
            np.testing.assert_array_equal(
                mine.reindex(want["symbol"]).to_numpy(), want["y_pred"].to_numpy(), err_msg=model
            )
    assert set(bundle.models) == {"lightgbm", "lstm", "ranker", "blend"}  # no baselines


def test_forecast_columns_and_calendar(equal_case, panel):
    _, bundle, _ = equal_case
    got = bundle.predict(panel)
    assert list(got.columns) == [
        "asof", "target_timestamp", "symbol", "model", "horizon", "y_pred",
    ]  # fmt: skip
    last = panel.index.get_level_values("timestamp").max()
    assert (got["asof"] == last).all() and (got["horizon"] == 1).all()
    assert (got["target_timestamp"] == last + pd.offsets.BDay(1)).all()  # weekdays-only panel
    assert len(got) == 6 * 4
    lgb = got[got["model"] == "lightgbm"]["y_pred"].to_numpy()
    assert (np.diff(lgb) <= 0).all()  # best-ranked first


def test_predict_twice_is_byte_identical_and_a_fresh_process_agrees(equal_case, panel, tmp_path):
    _, _, tmp = equal_case
    panel_file = tmp_path / "panel.parquet"
    frame = panel.reset_index()
    frame.attrs = {}  # the validated panel's attrs hold a Timedelta, which Parquet cannot store
    frame.to_parquet(panel_file, index=False)
    predict(tmp / "bundle", str(panel_file), out=tmp_path / "a.parquet")
    predict(tmp / "bundle", str(panel_file), out=tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    code = (
        "import sys; from alphaforge.bundle import predict; "
        "predict(sys.argv[1], sys.argv[2], out=sys.argv[3])"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(tmp / "bundle"), str(panel_file), str(tmp_path / "c.pq")],
        check=True,
        cwd=tmp_path,  # no config, no training data: the bundle carries what it needs
    )
    a = pd.read_parquet(tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(a, pd.read_parquet(tmp_path / "c.pq"))


def test_manifest_records_what_predict_needs(equal_case):
    _, _, tmp = equal_case
    m = json.loads((tmp / "bundle" / "manifest.json").read_text())
    assert m["format_version"] == FORMAT_VERSION and m["alphaforge_version"]
    assert m["data"]["n_rows"] > 0 and len(m["data"]["sha256"]) == 64
    assert m["features"]["max_lookback"] == 253 and "close" in m["features"]["fields"]
    assert all(len(d["sha256"]) == 64 and d["size"] > 0 for d in m["files"].values())
    assert any(f.startswith("models/lightgbm/") for f in m["files"])


# ---------------------------------------------------------------------- refusals
@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("small")
    fit(_config([{"name": "lightgbm", "params": TINY_LGB}])).save(tmp / "b")
    return tmp / "b"


def test_refuses_a_panel_without_the_columns_features_read(small_bundle, panel):
    with pytest.raises(DataError, match=r"lacks column\(s\) \['volume'\]"):
        load_bundle(small_bundle).predict(panel.drop(columns=["volume"]))


def test_refuses_symbols_with_too_short_a_history(small_bundle, panel):
    late = panel[panel.index.get_level_values("timestamp") >= panel.index.levels[0][-100]]
    with pytest.raises(DataError, match="fewer bars than the longest feature lookback"):
        load_bundle(small_bundle).predict(late)


def test_refuses_an_asof_before_the_training_end(small_bundle, panel):
    with pytest.raises(ConfigError, match="before the bundle's training end"):
        load_bundle(small_bundle).predict(panel, asof="2015-06-01")


def test_refuses_unknown_symbols_of_a_symbol_token_model(small_bundle, panel):
    b = load_bundle(small_bundle)
    b.models["lightgbm"].symbols_ = ["S000"]  # as a GPT with symbol tokens learns them
    with pytest.raises(DataError, match="symbol tokens and has none for"):
        b.predict(panel)


def test_refuses_another_format_and_missing_or_altered_files(small_bundle, tmp_path):
    import shutil

    for case in ("version", "missing", "altered"):
        b = tmp_path / case
        shutil.copytree(small_bundle, b)
        if case == "version":
            m = json.loads((b / "manifest.json").read_text())
            m["format_version"] = FORMAT_VERSION + 1
            (b / "manifest.json").write_text(json.dumps(m))
            match = "bundle format 'alphaforge.bundle' version 2"
        elif case == "missing":
            (b / "models" / "lightgbm" / "model.txt").unlink()
            match = "bundle file models/lightgbm/model.txt is missing"
        else:
            with open(b / "models" / "lightgbm" / "model.txt", "a") as fh:
                fh.write(" ")
            match = "bundle file models/lightgbm/model.txt is damaged"
        with pytest.raises(DataError, match=match):
            load_bundle(b)


def test_cli_refusal_is_one_line_exit_2_and_writes_nothing(small_bundle, tmp_path):
    out = tmp_path / "f.parquet"
    res = CliRunner().invoke(
        app, ["predict", str(small_bundle), "--data", DATA, "--out", str(out), "--asof", "2015"]
    )
    assert res.exit_code == 2 and "before the bundle's training end" in res.output
    assert not out.exists()
    ok = CliRunner().invoke(app, ["predict", str(small_bundle), "--data", DATA, "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert len(pd.read_parquet(out)) == 6


def test_daily_loop_tune_then_fit_then_predict(tmp_path, panel):
    """`tune` writes hyperparams/best; a config with params_from uses them with no copying."""
    from alphaforge.tuning import tune

    tune(
        data=DATA,
        model="lightgbm",
        symbols=["S000", "S001"],
        trials=2,
        root=tmp_path,
        fixed_params={"lightgbm": {"n_estimators": 15, "n_jobs": 1}},
        val=20,
        test=10,
    )
    best = tmp_path / "hyperparams" / "best"
    cfg = _config([{"name": "lightgbm", "params": {"n_jobs": 1}, "params_from": str(best)}])
    bundle = fit(cfg)
    model = bundle.models["lightgbm"]
    for sym in ("S000", "S001"):
        tuned = json.loads((best / f"{sym}.json").read_text())["params"]
        assert model.params_[sym]["num_leaves"] == tuned["num_leaves"]
        assert model.params_[sym]["n_jobs"] == 1  # the config's own params win
    assert model.params_source_["S002"] is None  # not tuned: the config's params
    got = bundle.predict(panel)
    assert got["y_pred"].notna().all() and set(got["symbol"]) == {f"S00{i}" for i in range(6)}


def test_refuses_a_one_symbol_panel_for_a_cross_sectional_bundle(small_bundle, panel):
    one = panel[panel.index.get_level_values("symbol") == "S000"]
    with pytest.raises(DataError, match="cross-sectional features need at least 2 symbols"):
        load_bundle(small_bundle).predict(one)
