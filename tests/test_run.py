import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaforge.run import run_experiment

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    return run_experiment(TINY, out=out)


def test_run_directory_contents(tiny_run):
    d = tiny_run.run_dir
    for name in ("config.yaml", "predictions.parquet", "metrics.json", "folds.json", "run.log"):
        assert (d / name).is_file(), name
    preds = pd.read_parquet(d / "predictions.parquet")
    assert list(preds.columns) == [
        "timestamp",
        "symbol",
        "model",
        "fold",
        "split",
        "y_true",
        "y_pred",
    ]
    assert set(preds["split"]) == {"valid", "test"}
    assert {"lightgbm", "xgboost", "zero", "trailing_mean", "last_value"} <= set(preds["model"])
    metrics = json.loads((d / "metrics.json").read_text())
    lgb = metrics["models"]["lightgbm"]
    assert not lgb["baseline"] and metrics["models"]["zero"]["baseline"]
    assert set(lgb["test"]["per_fold"]) == {"0", "1"}
    assert "rank_ic" in lgb["test"]["overall"]
    assert (d / "models" / "lightgbm" / "fold_1").is_dir()
    # no temporary folders are left beside the run directory
    assert [p.name for p in d.parent.iterdir()] == ["tiny"]


def test_test_predictions_only_on_test_bars(tiny_run):
    preds = tiny_run.predictions
    for fold in tiny_run.folds:
        got = preds[(preds["fold"] == fold.index) & (preds["split"] == "test")]["timestamp"]
        assert set(got) == set(fold.test)


def test_same_seed_gives_byte_identical_predictions(tiny_run, tmp_path):
    again = run_experiment(TINY, out=tmp_path / "again")
    a = (tiny_run.run_dir / "predictions.parquet").read_bytes()
    b = (again.run_dir / "predictions.parquet").read_bytes()
    assert a == b


def test_metrics_table_has_models_and_baselines(tiny_run):
    table = tiny_run.table("test")
    assert {"lightgbm", "xgboost", "zero", "trailing_mean", "last_value"} <= set(table.index)
    assert np.isfinite(table.loc["lightgbm", "rank_ic"])


def test_interrupted_run_resumes_from_checkpoints(tmp_path, monkeypatch):
    import yaml

    from alphaforge.models import trees

    cfg = yaml.safe_load(TINY.read_text())
    cfg["models"] = [
        {
            "name": "lstm",
            "params": {
                "lookback": 8,
                "hidden": 8,
                "max_epochs": 2,
                "batch_size": 64,
                "device": "cpu",
            },
        },
        {"name": "lightgbm", "params": {"n_estimators": 20}},
    ]
    cfg["baselines"] = False
    fresh = run_experiment(cfg, out=tmp_path / "fresh")

    # crash in the second fold's LightGBM: the LSTM has checkpointed folds 0 and 1 by then
    calls = {"n": 0}
    real_fit = trees.LightGBMForecaster._fit

    def crash(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_fit(self, *a, **k)

    monkeypatch.setattr(trees.LightGBMForecaster, "_fit", crash)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert (tmp_path / "run.ckpt" / "lstm" / "fold_1" / "last.pt").is_file()
    monkeypatch.setattr(trees.LightGBMForecaster, "_fit", real_fit)

    resumed = run_experiment(cfg, out=tmp_path / "run", resume=True)
    hist = pd.read_parquet(resumed.run_dir / "history.parquet")
    assert set(hist["model"]) == {"lstm"} and set(hist["fold"]) == {0, 1}
    assert 'data-plot="training"' in (resumed.run_dir / "report.html").read_text()
    pd.testing.assert_frame_equal(resumed.predictions, fresh.predictions)
    assert "resumed from" in (resumed.run_dir / "run.log").read_text()
    assert not (tmp_path / "run.ckpt").exists()


def _tiny(**overrides: object) -> dict:
    from alphaforge.config import load_config

    raw = load_config(TINY).model_dump()
    raw["models"] = [
        {"name": "lightgbm", "params": {"n_estimators": 20, "num_leaves": 7, "n_jobs": 1}}
    ]
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            raw[section][field] = value
        else:
            raw[section] = value
    return raw


def test_label_transform_trains_on_ranks_and_scores_raw_labels(tmp_path):
    from alphaforge.labels import make_label
    from alphaforge.models.base import BaseForecaster

    raw = run_experiment(_tiny(), out=tmp_path / "raw")
    ranked = run_experiment(_tiny(label__transform="rank"), out=tmp_path / "rank")
    a, b = raw.predictions, ranked.predictions
    pd.testing.assert_series_equal(a["y_true"], b["y_true"])  # y_true stays the raw label
    panel = ranked.config.data.source
    from alphaforge.data import load_panel

    y = make_label(load_panel(panel), "forward_return", 1)
    lgb = b[b["model"] == "lightgbm"].set_index(["timestamp", "symbol"])
    np.testing.assert_allclose(lgb["y_true"], y.reindex(lgb.index), equal_nan=True)
    # the model learnt centred ranks (unit variance), not returns (~1% daily)
    assert lgb["y_pred"].std() > 5 * a[a["model"] == "lightgbm"]["y_pred"].std()
    model = BaseForecaster.load(tmp_path / "rank" / "models" / "lightgbm" / "fold_0")
    assert model.label_.transform == "rank"
    metrics = json.loads((tmp_path / "rank" / "metrics.json").read_text())
    assert metrics["label"]["transform"] == "rank"


def test_cross_sectional_transform_needs_two_symbols(tmp_path):
    from alphaforge.data import load_panel
    from alphaforge.errors import ConfigError

    panel = load_panel("synthetic:n_symbols=2,n_bars=420,seed=1")
    one = panel[panel.index.get_level_values("symbol") == "S000"]
    one.attrs = {}
    one.reset_index().to_parquet(tmp_path / "one.parquet", index=False)
    cfg = _tiny(label__transform="zscore")
    cfg["data"]["source"] = str(tmp_path / "one.parquet")
    with pytest.raises(ConfigError, match="label.transform: 'zscore'.*1 symbol"):
        run_experiment(cfg, out=tmp_path / "one")


def test_seeds_average_into_one_model_and_count_as_configurations(tmp_path):
    cfg = _tiny(configurations_tried=5)
    cfg["models"][0]["seeds"] = 3
    run = run_experiment(cfg, out=tmp_path / "seeds")
    preds = run.predictions
    assert set(preds["model"]) == {"lightgbm", "zero", "trailing_mean", "last_value"}
    entry = run.metrics["models"]["lightgbm"]
    assert entry["seeds"] == 3 and "ensemble" not in entry
    assert run.metrics["n_configurations"] == 5 + 3  # tried before + this run's seeds
    members = sorted(
        p.name for p in (tmp_path / "seeds" / "models" / "lightgbm" / "fold_0").iterdir()
    )
    assert [m for m in members if m.startswith("member_")] == ["member_0", "member_1", "member_2"]


def test_feature_normalisation_runs_per_fold(tmp_path):
    for how in ("cs_rank", "robust_zscore"):
        run = run_experiment(_tiny(features__normalize=how), out=tmp_path / how)
        lgb = run.predictions[run.predictions["model"] == "lightgbm"]
        assert lgb["y_pred"].notna().all() and np.isfinite(run.table("test").loc["lightgbm", "ic"])
