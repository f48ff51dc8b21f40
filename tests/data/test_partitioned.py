"""Partitioned datasets in: a directory or glob of shards loads like the one file it was cut
from, every shard validated with errors naming it, then all shards together."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from alphaforge.data import load_panel, synthetic_panel, write_repair_report
from alphaforge.data.io import is_dataset, list_shards
from alphaforge.errors import DataError


def _long(n_symbols: int = 4, n_bars: int = 300) -> pd.DataFrame:
    long = synthetic_panel(n_symbols=n_symbols, n_bars=n_bars, seed=7).reset_index()
    long.attrs = {}
    return long


def _write(long: pd.DataFrame, root: Path, by: str) -> None:
    for key, rows in long.groupby(by):
        folder = root / f"{by}={key}"
        folder.mkdir(parents=True)
        rows.drop(columns=[by] if by == "symbol" else []).to_parquet(folder / "p.parquet")


@pytest.mark.parametrize(
    "layout", ["symbol_folders", "date_folders", "plain", "glob", "recursive_glob"]
)
def test_every_layout_loads_like_one_file(tmp_path: Path, layout: str) -> None:
    long = _long()
    long.to_parquet(tmp_path / "all.parquet", index=False)
    root = tmp_path / "ds"
    if layout == "symbol_folders":
        _write(long, root, "symbol")
    elif layout == "date_folders":
        _write(long.assign(date=long["timestamp"].dt.strftime("%Y-%m")), root, "date")
        for f in root.rglob("*.parquet"):  # the date folder is a label; files keep timestamps
            pd.read_parquet(f).drop(columns="date").to_parquet(f, index=False)
    else:
        root.mkdir()
        for k, (_, rows) in enumerate(long.groupby("symbol")):
            rows.to_parquet(root / f"part-{k}.parquet", index=False)
        (root / "_SUCCESS").write_text("")  # skipped, as are hidden files
        (root / ".part-9.parquet").write_text("not parquet")
    source = {"glob": f"{root}/part-*.parquet", "recursive_glob": f"{tmp_path}/ds/**/*.parquet"}
    source = source.get(layout, str(root))
    assert is_dataset(source)
    got = load_panel(source)
    want = load_panel(tmp_path / "all.parquet")
    pd.testing.assert_frame_equal(got, want)
    assert got.attrs["source"] == source and got.attrs["freq"] == want.attrs["freq"]


def test_symbol_folder_gives_the_symbol_and_must_agree(tmp_path: Path) -> None:
    long = _long(n_symbols=2)
    _write(long, tmp_path, "symbol")
    shards = list_shards(tmp_path)
    assert [s.keys for s in shards] == [{"symbol": "S000"}, {"symbol": "S001"}]
    wrong = tmp_path / "symbol=S001" / "p.parquet"
    long[long["symbol"] == "S000"].to_parquet(wrong, index=False)  # a symbol column that disagrees
    with pytest.raises(DataError, match=r"symbol=S001/p\.parquet: data row 1: symbol 'S000' in"):
        load_panel(tmp_path)


def test_bad_value_names_the_shard_symbol_row_and_value(tmp_path: Path) -> None:
    long = _long()
    for k, (_, rows) in enumerate(long.groupby("symbol")):
        rows = rows.reset_index(drop=True)
        if k == 2:
            rows.loc[9, "low"] = -1.0
        rows.to_parquet(tmp_path / f"part-{k}.parquet", index=False)
    with pytest.raises(DataError) as err:
        load_panel(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'part-2.parquet'}: symbol 'S002', data row 10")
    assert "low -1 <= 0" in str(err.value)


def test_cross_shard_defects_name_the_shards(tmp_path: Path) -> None:
    long = _long()
    early, late = long[long["timestamp"] < "2015-02-01"], long[long["timestamp"] >= "2015-02-01"]
    early.to_parquet(tmp_path / "a.parquet", index=False)
    late.to_parquet(tmp_path / "b.parquet", index=False)
    pd.concat([late.iloc[:2]]).to_parquet(tmp_path / "c.parquet", index=False)
    with pytest.raises(
        DataError, match=r"same bar is in two shards: .*b\.parquet and .*c\.parquet"
    ):
        load_panel(tmp_path)
    repaired = load_panel(tmp_path, repair=True)
    pd.testing.assert_frame_equal(repaired, load_panel(tmp_path / "*[ab].parquet"))
    records = repaired.attrs["repairs"]
    assert len(records) == 2 and {r["file"] for r in records} == {str(tmp_path / "c.parquet")}
    write_repair_report(records, tmp_path.parent / f"{tmp_path.name}-repairs.csv")
    report = pd.read_csv(tmp_path.parent / f"{tmp_path.name}-repairs.csv")
    assert list(report.columns)[-1] == "file"
    os.remove(tmp_path / "c.parquet")
    # history spread over shards is counted over all of them
    with pytest.raises(DataError, match=r"symbol 'S000'.*301 bars needed"):
        load_panel(tmp_path, min_bars=301)
    assert len(load_panel(tmp_path, min_bars=300)) == len(long)


def test_empty_or_missing_dataset(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no data files"):
        load_panel(tmp_path / "empty")
    with pytest.raises(DataError, match="no data files"):
        load_panel(str(tmp_path / "nothing-*.parquet"))
