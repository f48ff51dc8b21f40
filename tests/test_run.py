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
