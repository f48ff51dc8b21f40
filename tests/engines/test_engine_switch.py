"""``engine: dask`` in an experiment and ``alphaforge features --engine dask``: the same results
as the memory engine, through the one switch in ``alphaforge.engines``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from alphaforge.cli import app
from alphaforge.config import load_config
from alphaforge.data import load_panel, synthetic_panel
from alphaforge.engines import ClusterSpec, engine_members, features_for, write_features
from alphaforge.engines.dask_trees import DaskLightGBMForecaster, DaskXGBoostForecaster
from alphaforge.errors import ConfigError
from alphaforge.features import build_features
from alphaforge.models.base import BaseForecaster
from alphaforge.models.trees import LightGBMForecaster
from alphaforge.run import run_experiment, run_members

from .conftest import assert_same_values, read_dataset, write_dataset

ROOT = Path(__file__).resolve().parents[2]
TINY = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())


def test_config_takes_an_engine_and_a_cluster() -> None:
    cfg = load_config({**TINY, "engine": "dask", "cluster": {"workers": 2, "memory_limit": "1GB"}})
    assert cfg.engine == "dask" and cfg.cluster.workers == 2
    assert load_config(TINY).engine == "memory"
    with pytest.raises(ConfigError, match="engine"):
        load_config({**TINY, "engine": "spark"})
    with pytest.raises(ConfigError, match=r"unknown key 'cluster.nodes'.*memory_limit"):
        load_config({**TINY, "cluster": {"nodes": 3}})


def test_switch_picks_the_engines_classes() -> None:
    memory, dask = load_config(TINY), load_config({**TINY, "engine": "dask"})
    assert features_for(memory) is build_features
    assert features_for(dask) is not build_features
    members = run_members(dask, "return")
    switched = {m.name: m.factory for m in engine_members(members, dask)}
    assert switched["lightgbm"] is DaskLightGBMForecaster
    assert switched["xgboost"] is DaskXGBoostForecaster
    assert {m.name: m.factory for m in engine_members(members, memory)}["lightgbm"] is (
        LightGBMForecaster
    )


def test_run_on_dask_equals_the_memory_run(tmp_path: Path) -> None:
    cluster = {"workers": 1, "processes": False}
    memory = run_experiment(TINY, out=tmp_path / "memory")
    dask = run_experiment({**TINY, "engine": "dask", "cluster": cluster}, out=tmp_path / "dask")
    pd.testing.assert_frame_equal(dask.predictions, memory.predictions)
    assert dask.table().equals(memory.table())
    saved = BaseForecaster.load(tmp_path / "dask" / "models" / "lightgbm" / "fold_0")
    assert type(saved) is LightGBMForecaster
    assert "engine: dask" in (tmp_path / "dask" / "config.yaml").read_text()


def test_features_command_on_a_local_cluster(tmp_path: Path) -> None:
    source = write_dataset(synthetic_panel(n_symbols=6, n_bars=300, seed=2), tmp_path / "b", "glob")
    out = tmp_path / "features"
    args = ["features", source, "--out", str(out), "--engine", "dask", "--workers", "1"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "1800 rows x 116 features" in res.output
    assert_same_values(read_dataset(out), build_features(load_panel(source)))
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "exists and is not empty; pass --overwrite" in again.output
    both = CliRunner().invoke(
        app, [*args[:4], "--engine", "dask", "--workers", "1", "--scheduler", "tcp://127.0.0.1:1"]
    )
    assert both.exit_code == 2 and "not both" in both.output


def test_memory_engine_refuses_cluster_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="for --engine dask"):
        write_features(
            "synthetic:n_symbols=3,n_bars=300",
            tmp_path / "f.parquet",
            cluster=ClusterSpec(workers=2),
        )
