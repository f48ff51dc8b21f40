"""The Dask engine's features equal ``build_features``: values, NaNs, columns, rows; from a
Panel and from every dataset layout; the cross-sectional stage included; no look-ahead."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaforge.data import load_panel
from alphaforge.engines.dask_features import (
    FeatureJob,
    build_feature_dataset,
    dask_build_features,
    grid_is_dense,
)
from alphaforge.errors import ConfigError, DataError, OutputError
from alphaforge.features import build_features
from alphaforge.labels import LabelSpec, make_label
from alphaforge.testing import check_no_lookahead, leakage_panel

from .conftest import LAYOUTS, PANELS, assert_same_values, read_dataset, write_dataset


@pytest.mark.parametrize("name", list(PANELS))
def test_equal_to_build_features_from_a_panel(name: str, client) -> None:
    panel = PANELS[name]()
    # small partitions: several per-symbol partitions and several cross-sections per panel
    got = dask_build_features(panel, client=client, partition_rows=500)
    assert_same_values(got, build_features(panel))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"catalogue": "alpha158", "cs_features": ["KMID", "ROC5"]},
        {"names": ["ret_1", "rv_20"], "cs_features": ["ret_5"], "dtype": np.float32},
        {"cross_section": False},
    ],
)
def test_equal_for_other_catalogues_columns_and_dtypes(kwargs, client) -> None:
    panel = PANELS["daily_wide"]()
    got = dask_build_features(panel, client=client, partition_rows=700, **kwargs)
    assert_same_values(got, build_features(panel, **kwargs))


def test_sparse_cross_sections_take_the_groupby_path_as_in_memory(client) -> None:
    # symbols on disjoint timestamp grids: the grid would be mostly holes, as for the whole panel
    panel = PANELS["daily_wide"]().iloc[::3]
    wide = pd.concat(
        [panel.rename(index=lambda s, k=k: f"{s}_{k}", level="symbol") for k in range(40)]
    )
    stamps = wide.index.get_level_values("timestamp")
    symbols = wide.index.get_level_values("symbol")
    shift = pd.to_timedelta(symbols.str[-2:].str.strip("_").astype(int), unit="min")
    wide.index = pd.MultiIndex.from_arrays([stamps + shift, symbols], names=wide.index.names)
    wide = wide.sort_index()
    n = wide.index.get_level_values("timestamp").nunique()
    assert not grid_is_dense(n, 480, len(wide))  # the whole panel takes the groupby path
    got = dask_build_features(wide, ["ret_1", "rv_20"], client=client, partition_rows=2000)
    assert_same_values(got, build_features(wide, ["ret_1", "rv_20"]))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_datasets_of_every_layout(layout: str, tmp_path: Path, client) -> None:
    source = write_dataset(PANELS["daily_wide"](), tmp_path / "bars", layout)
    out = tmp_path / "features"
    manifest = build_feature_dataset(
        source, out, client=client, partition_rows=900, label=LabelSpec(horizon=2)
    )
    panel = load_panel(source)
    want = build_features(panel).assign(label=make_label(panel, "forward_return", 2))
    assert_same_values(read_dataset(out), want)
    # every part holds whole symbols, rows in (timestamp, symbol) order; the manifest says so
    files = sorted(p.name for p in out.iterdir())
    assert files == ["_dataset.json", *(p["file"] for p in manifest["parts"])]
    seen: set[str] = set()
    for part in manifest["parts"]:
        frame = pd.read_parquet(out / part["file"])
        keys = pd.MultiIndex.from_frame(frame[["timestamp", "symbol"]])
        assert keys.is_monotonic_increasing and len(frame) == part["rows"]
        assert not seen & set(frame["symbol"])
        seen |= set(frame["symbol"])
    assert manifest["n_rows"] == len(panel) and manifest["n_symbols"] == 12
    assert json.loads((out / "_dataset.json").read_text())["columns"] == list(want.columns[:-1])


def test_leak_battery_passes_on_the_dask_path(client) -> None:
    panel = leakage_panel(n_bars=160)
    stamps = panel.index.get_level_values("timestamp").unique()

    def fn(p: pd.DataFrame) -> pd.DataFrame:
        return dask_build_features(p, client=client, partition_rows=150)

    cuts = [stamps[i] for i in (40, 80, 120, 158)]
    assert check_no_lookahead(panel, fn, cuts=cuts, name="dask features") == len(cuts)


def test_one_symbol_leaves_out_the_cross_section_as_in_memory(tmp_path, client, caplog) -> None:
    panel = PANELS["daily_wide"]().xs("S003", level="symbol", drop_level=False)
    with caplog.at_level(logging.WARNING):
        got = dask_build_features(panel, client=client)
    assert_same_values(got, build_features(panel))
    assert "cs_rank_ret_1" in caplog.text
    build_feature_dataset(panel, tmp_path / "one", client=client, min_bars=None)
    assert_same_values(read_dataset(tmp_path / "one"), build_features(panel))


def test_bad_shard_is_named_with_symbol_row_and_value(tmp_path, client) -> None:
    source = write_dataset(PANELS["daily_wide"](), tmp_path / "bars", "plain_shards")
    bad = tmp_path / "bars" / "shard-004.parquet"
    frame = pd.read_parquet(bad)
    frame.loc[7, "high"] = 1.0
    frame.to_parquet(bad, index=False)
    with pytest.raises(
        DataError, match=r"shard-004\.parquet: symbol 'S00[45]', data row 8 .*high 1"
    ):
        build_feature_dataset(source, tmp_path / "out", client=client)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bars"]  # nothing half-written beside


def test_bar_in_two_date_shards_is_refused(tmp_path, client) -> None:
    source = write_dataset(PANELS["daily_wide"](), tmp_path / "bars", "date_folders")
    first = sorted((tmp_path / "bars").iterdir())[0] / "bars.parquet"
    extra = tmp_path / "bars" / "date=extra"
    extra.mkdir()
    pd.read_parquet(first).iloc[:3].to_parquet(extra / "again.parquet", index=False)
    with pytest.raises(DataError, match="the same bar is in two shards"):
        build_feature_dataset(source, tmp_path / "out", client=client)


def test_existing_output_is_refused_then_replaced(tmp_path, client) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    panel = PANELS["intraday_utc"]()
    with pytest.raises(OutputError, match="exists and is not empty"):
        build_feature_dataset(panel, out, client=client)
    assert (out / "keep.txt").exists()
    build_feature_dataset(panel, out, client=client, overwrite=True)
    assert not (out / "keep.txt").exists()
    assert_same_values(read_dataset(out), build_features(panel))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_job_resolves_names_like_build_features() -> None:
    job = FeatureJob.resolve(["ret_1", "rv_20"], {"cs_features": ["ret_5"]})
    assert job.needed == ["ret_1", "rv_20", "ret_5"]
    assert job.columns(job.cs) == ["ret_1", "rv_20", "cs_rank_ret_5", "cs_z_ret_5"]
    with pytest.raises(ConfigError, match="unknown feature option"):
        FeatureJob.resolve(None, {"catalog": "alpha158"})
