"""validate_panel / load_panel behaviour on hand-made frames and files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphaforge.data import (
    describe_panel,
    load_panel,
    read_table,
    validate_panel,
    write_repair_report,
)
from alphaforge.data.loader import resolve_min_bars
from alphaforge.errors import ConfigError, DataError
from alphaforge.features import max_lookback


def test_column_spellings_are_mapped(long_frame: pd.DataFrame, panel_contract) -> None:
    frame = long_frame.assign(adj=long_frame["close"] * 0.9).rename(
        columns={
            "timestamp": "Date",
            "symbol": "Ticker",
            "open": "Open",
            "high": "HIGH",
            "low": "low",
            "close": "Close",
            "volume": "Volume",
            "adj": "Adj Close",
        }
    )
    frame["Comment"] = "ignored"
    panel = validate_panel(frame)
    panel_contract(panel)
    assert list(panel.columns) == ["open", "high", "low", "close", "volume", "adj_close"]
    for spelling in ("Datetime", "Time", "timestamp"):
        assert len(validate_panel(long_frame.rename(columns={"timestamp": spelling}))) == 60
    for spelling in ("Name", "Instrument", "SYMBOL"):
        assert len(validate_panel(long_frame.rename(columns={"symbol": spelling}))) == 60
    for spelling in ("adj_close", "AdjClose"):
        renamed = long_frame.assign(**{spelling: long_frame["close"]})
        assert "adj_close" in validate_panel(renamed).columns


def test_dataframe_input_is_not_modified(long_frame: pd.DataFrame) -> None:
    frame = long_frame.sample(frac=1.0, random_state=1).rename(columns={"close": "Close"})
    frame.loc[frame.index[3], "open"] = np.nan  # a defect repair will drop
    frame.attrs["note"] = "mine"
    before = frame.copy(deep=True)
    panel = load_panel(frame, min_bars=None, repair=True)
    pd.testing.assert_frame_equal(frame, before)
    assert frame.attrs == {"note": "mine"}
    assert len(panel) == len(frame) - 1 and panel.attrs["note"] == "mine"
    panel.iloc[0, 0] = -1.0  # and the result shares no memory with the input
    pd.testing.assert_frame_equal(frame, before)


def test_rows_are_sorted_and_row_numbers_survive_sorting(long_frame: pd.DataFrame) -> None:
    shuffled = long_frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    panel = validate_panel(shuffled)
    assert panel.index.is_monotonic_increasing
    expected = (
        long_frame.astype({"timestamp": "datetime64[ns]", "symbol": object})
        .sort_values(["timestamp", "symbol"])
        .set_index(["timestamp", "symbol"])
    )
    pd.testing.assert_frame_equal(panel, expected)
    bad_pos = int(np.flatnonzero((shuffled["symbol"] == "BBB") & (shuffled.index > 40))[0])
    shuffled.loc[bad_pos, "high"] = shuffled.loc[bad_pos, "low"] / 2
    with pytest.raises(DataError, match=f"row {bad_pos + 1} "):
        validate_panel(shuffled)
    repaired = validate_panel(shuffled, repair=True)
    assert [r["row"] for r in repaired.attrs["repairs"]] == [bad_pos + 1]


def test_symbols_sort_lexicographically_and_stay_str(make_long, panel_contract) -> None:
    frame = make_long(symbols=("b", "B", "BRK.B", "CON", "AAPL", "aapl", "007", "NA"))
    panel = validate_panel(frame)
    panel_contract(panel)
    first = panel.xs(panel.index[0][0], level="timestamp").index.tolist()
    assert first == sorted(first) == ["007", "AAPL", "B", "BRK.B", "CON", "NA", "aapl", "b"]


def test_ticker_text_survives_csv(tmp_path, long_frame: pd.DataFrame) -> None:
    frame = long_frame.assign(symbol=long_frame["symbol"].map({"AAA": "NA", "BBB": "007"}))
    frame.to_csv(tmp_path / "p.csv", index=False)
    symbols = load_panel(tmp_path / "p.csv", min_bars=None).index.get_level_values("symbol")
    assert set(symbols) == {"NA", "007"}


def test_tz_aware_text_is_converted_to_utc(tmp_path, long_frame: pd.DataFrame) -> None:
    frame = long_frame.assign(
        timestamp=long_frame["timestamp"].dt.strftime("%Y-%m-%d 09:30:00")
        + np.where(long_frame["symbol"] == "AAA", "+01:00", "-05:00")
    )
    frame.to_csv(tmp_path / "tz.csv", index=False)
    panel = load_panel(tmp_path / "tz.csv", min_bars=None)
    ts = panel.index.get_level_values("timestamp")
    assert str(ts.dtype) == "datetime64[ns, UTC]"
    assert set(ts.hour) == {8, 14}
    naive = validate_panel(long_frame).index.get_level_values("timestamp")
    assert str(naive.dtype) == "datetime64[ns]"


def test_tz_aware_column_and_dst_daily_bars(make_long, long_frame: pd.DataFrame) -> None:
    # local midnights across the March DST change are 23 h apart in UTC: still daily bars
    frame = make_long(n_bars=60)
    frame["timestamp"] = frame["timestamp"].dt.tz_localize("America/New_York")
    panel = validate_panel(frame)
    ts = panel.index.get_level_values("timestamp")
    assert str(ts.dtype) == "datetime64[ns, UTC]" and set(ts.hour) == {4, 5}
    assert panel.attrs["freq"] == pd.Timedelta("1D")
    us = long_frame.assign(timestamp=long_frame["timestamp"].astype("datetime64[us]"))
    assert str(validate_panel(us).index.levels[0].dtype) == "datetime64[ns]"


def test_tz_mixed_objects_are_refused(long_frame: pd.DataFrame) -> None:
    stamps = list(long_frame["timestamp"])
    stamps[7] = stamps[7].tz_localize("UTC")
    with pytest.raises(DataError, match="row 8: .*mixes tz-naive and tz-aware"):
        validate_panel(long_frame.assign(timestamp=pd.Series(stamps, dtype=object)))


def test_month_first_and_unparseable_dates(long_frame: pd.DataFrame) -> None:
    text = long_frame.assign(timestamp=long_frame["timestamp"].dt.strftime("%m/%d/%Y"))
    pd.testing.assert_frame_equal(validate_panel(text), validate_panel(long_frame))
    text.loc[4, "timestamp"] = "13/45/2021"
    with pytest.raises(DataError, match="row 5: unparseable date '13/45/2021'"):
        validate_panel(text)
    text.loc[4, "timestamp"] = None
    with pytest.raises(DataError, match="row 5: missing timestamp"):
        validate_panel(text)


def test_weekend_and_holiday_gaps_are_not_mixed_frequency(
    make_long, long_frame: pd.DataFrame
) -> None:
    holiday = long_frame.drop(index=[5, 6, 40])
    assert len(validate_panel(holiday)) == 57
    weekly = make_long(n_bars=40, freq="W-FRI").drop(index=[3, 50])
    assert validate_panel(weekly).attrs["freq"] == pd.Timedelta("7D")
    monthly = make_long(
        n_bars=40, freq=pd.offsets.MonthEnd()
    )  # 28-31 day spacing: not grid-checked
    assert len(validate_panel(monthly)) == 80


def test_off_grid_bar_is_refused_or_dropped(make_long, long_frame: pd.DataFrame) -> None:
    frame = make_long(n_bars=50, freq="15min")
    frame.loc[10, "timestamp"] += pd.Timedelta("5min 2s")
    with pytest.raises(DataError, match="symbol 'AAA', data row 11 .*mixed bar frequency"):
        validate_panel(frame)
    panel = validate_panel(frame, repair=True)
    assert [r["row"] for r in panel.attrs["repairs"]] == [11]
    assert panel.attrs["freq"] == pd.Timedelta("15min")


def test_ohlc_tolerance_accepts_float_rounding(long_frame: pd.DataFrame) -> None:
    frame = long_frame.copy()
    frame.loc[3, "open"] = frame.loc[3, "high"] * (1 + 1e-12)
    frame.loc[4, "close"] = frame.loc[4, "low"] * (1 - 1e-12)
    assert len(validate_panel(frame)) == 60
    frame.loc[4, "close"] = frame.loc[4, "low"] * (1 - 1e-6)
    with pytest.raises(DataError, match="row 5 .*close .* outside"):
        validate_panel(frame)


def test_unparseable_number_names_column_and_text(long_frame: pd.DataFrame) -> None:
    frame = long_frame.astype({"volume": object})
    frame.loc[12, "volume"] = "1,200"
    with pytest.raises(
        DataError,
        match=r"symbol 'AAA', data row 13 \(2021-01-20\): unparseable number '1,200' in column "
        r"'volume'",
    ):
        validate_panel(frame)


def test_repair_keeps_first_duplicate_and_records_everything(
    long_frame: pd.DataFrame, tmp_path
) -> None:
    frame = pd.concat([long_frame, long_frame.iloc[[2, 45]]], ignore_index=True)  # rows 61, 62
    with pytest.raises(
        DataError, match="symbol 'AAA', data row 61 .*exact duplicate: rows 3 and 61"
    ):
        validate_panel(frame)
    frame.loc[0, "low"] = -1.0
    panel = validate_panel(frame, repair=True)
    rows = [r["row"] for r in panel.attrs["repairs"]]
    assert rows == [1, 61, 62] and len(panel) == 59
    assert set(panel.attrs["repairs"][0]) == {"row", "symbol", "timestamp", "action", "reason"}
    write_repair_report(panel.attrs["repairs"], tmp_path / "out" / "repairs.csv")
    report = pd.read_csv(tmp_path / "out" / "repairs.csv")
    assert list(report.columns) == ["row", "symbol", "timestamp", "action", "reason"]
    assert report["row"].tolist() == rows and "low -1 <= 0" in report["reason"].iloc[0]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["repairs.csv"]  # no temp left


def test_close_only_tables(tmp_path, long_frame: pd.DataFrame, panel_contract) -> None:
    closes = long_frame[["timestamp", "symbol", "close"]]
    panel = validate_panel(closes)
    panel_contract(panel)
    assert panel.attrs["close_only"] and panel["volume"].isna().all()
    again = validate_panel(panel)  # a close-only panel re-validates as close-only
    assert again.attrs["close_only"]
    pd.testing.assert_frame_equal(again, panel)
    assert not validate_panel(long_frame).attrs["close_only"]
    with pytest.raises(DataError, match="missing column.*open, high, low"):
        validate_panel(long_frame[["timestamp", "symbol", "close", "volume"]])
    single = long_frame.loc[long_frame["symbol"] == "AAA", ["timestamp", "close"]]
    single.to_csv(tmp_path / "SPY.csv.gz", index=False)
    spy = load_panel(tmp_path / "SPY.csv.gz", min_bars=None)
    assert spy.index.get_level_values("symbol").unique().tolist() == ["SPY"]
    assert spy.attrs["source"].endswith("SPY.csv.gz") and spy.attrs["close_only"]


def test_single_asset_file_stem_is_checked(tmp_path, long_frame: pd.DataFrame) -> None:
    single = long_frame.loc[long_frame["symbol"] == "AAA"].drop(columns="symbol")
    single.to_parquet(tmp_path / "BRK.B.pq", index=False)
    assert load_panel(tmp_path / "BRK.B.pq", min_bars=None).index.levels[1].tolist() == ["BRK.B"]
    single.to_csv(tmp_path / "a..b.csv", index=False)
    with pytest.raises(DataError, match="file stem is not a usable symbol.*'\\.\\.'"):
        load_panel(tmp_path / "a..b.csv")


def test_min_bars_semantics(long_frame: pd.DataFrame, monkeypatch) -> None:
    assert resolve_min_bars(None) is None and resolve_min_bars(7) == 7
    assert resolve_min_bars("auto") == max_lookback() + 1
    for bad in (0, -3, True, 2.5, "all"):
        with pytest.raises(ConfigError):
            resolve_min_bars(bad)
    with pytest.raises(
        DataError, match=r"symbol 'AAA': history too short: 30 bars found, 31 bars needed.*2 of 2"
    ):
        load_panel(long_frame, min_bars=31)
    assert len(load_panel(long_frame, min_bars=30)) == 60
    with pytest.raises(DataError, match="history too short"):
        load_panel(long_frame)  # "auto" needs a year of bars


def test_unsafe_and_missing_symbols(long_frame: pd.DataFrame) -> None:
    for bad, reason in (
        ("a/b", "path separator"),
        ("..", "'..'"),
        ("x\x00y", "control"),
        (" AAA", "whitespace"),
        ("A\\B", "path separator"),
    ):
        frame = long_frame.assign(symbol=long_frame["symbol"].replace({"BBB": bad}))
        with pytest.raises(DataError, match=f"row 31: unsafe symbol name.*{reason}"):
            validate_panel(frame)
    frame = long_frame.astype({"symbol": object})
    frame.loc[9, "symbol"] = None
    with pytest.raises(DataError, match="row 10: missing symbol"):
        validate_panel(frame)


def test_read_table_errors(tmp_path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_table(tmp_path / "nope.parquet")
    with pytest.raises(DataError, match="not a file"):
        read_table(tmp_path)
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    with pytest.raises(DataError, match="x.xlsx: unsupported file extension '.xlsx'"):
        read_table(tmp_path / "x.xlsx")
    (tmp_path / "latin.csv").write_bytes("date,symbol\n2020-01-01,\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_table(tmp_path / "latin.csv")
    with pytest.raises(DataError, match="cannot load a panel from int"):
        load_panel(3)  # type: ignore[arg-type]


def test_existing_panel_and_parquet_round_trip(tmp_path, long_frame: pd.DataFrame) -> None:
    panel = validate_panel(long_frame, source="mine")
    assert panel.attrs["source"] == "mine"
    pd.testing.assert_frame_equal(validate_panel(panel), panel)
    # attrs["freq"] (a Timedelta) is not JSON: pandas' to_parquet raises unless attrs are dropped
    panel.drop(columns=[]).pipe(lambda p: setattr(p, "attrs", {}) or p).to_parquet(
        tmp_path / "panel.parquet"
    )  # index stored by pandas
    loaded = load_panel(tmp_path / "panel.parquet", min_bars=None)
    pd.testing.assert_frame_equal(loaded, panel)
    assert loaded.attrs["source"].endswith("panel.parquet")


def test_describe_panel(long_frame: pd.DataFrame) -> None:
    info = describe_panel(validate_panel(long_frame))
    assert info["n_symbols"] == 2 and info["n_rows"] == 60 and not info["close_only"]
    assert info["start"] == pd.Timestamp("2021-01-04") and info["end"] == pd.Timestamp("2021-02-12")
    assert info["freq"] == pd.Timedelta("1D")


def test_validation_is_vectorised_and_fast(make_long) -> None:
    frame = make_long(n_bars=2_000, symbols=tuple(f"S{i:03d}" for i in range(100)))
    import time

    t0 = time.perf_counter()
    panel = validate_panel(frame.sample(frac=1.0, random_state=0))
    assert len(panel) == 200_000
    assert time.perf_counter() - t0 < 5.0
