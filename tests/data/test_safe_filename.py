"""Symbols accepted by validation map to collision-free, safe file names."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.data import validate_panel
from alphaforge.errors import DataError
from alphaforge.utils.io import check_symbol, safe_filename

RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}


def _accepted(symbol: str) -> bool:
    try:
        check_symbol(symbol)
    except DataError:
        return False
    return True


symbols = st.one_of(
    st.text(alphabet="ABCabc.-_^=~ 0123CONUL", min_size=1, max_size=8),
    st.text(min_size=1, max_size=12),
    st.sampled_from(["CON", "con", "BRK.B", "BRK-B", "BRK_B", "AAPL", "aapl", "NUL.txt", "^GSPC"]),
).filter(_accepted)


def _is_safe(name: str) -> bool:
    stem = name.split(".")[0].upper()
    return bool(re.fullmatch(r"[A-Za-z0-9_\-~]+", name)) and stem not in RESERVED


@settings(max_examples=300, deadline=None)
@given(st.lists(symbols, min_size=2, max_size=12, unique=True))
def test_distinct_symbols_never_share_a_file_name(names: list[str]) -> None:
    files = [safe_filename(s) for s in names]
    assert len({f.lower() for f in files}) == len(files)  # case-insensitive file systems too
    assert all(_is_safe(f) for f in files)
    assert files == [safe_filename(s) for s in names]  # stable


def test_awkward_but_legal_tickers_are_accepted_and_distinct(make_long) -> None:
    tickers = ("CON", "BRK.B", "BRK-B", "BRK_B", "aapl", "AAPL")
    panel = validate_panel(make_long(symbols=tickers))
    assert set(panel.index.get_level_values("symbol")) == set(tickers)
    files = {safe_filename(s).lower() for s in tickers}
    assert len(files) == len(tickers)
    assert safe_filename("AAPL") == "AAPL" and safe_filename("CON") != "CON"


@pytest.mark.parametrize("bad", ["../x", "a/b", "a\\b", "x\x00", "x\x1b[31m", ""])
def test_unsafe_symbols_are_refused(bad: str) -> None:
    with pytest.raises(DataError):
        safe_filename(bad)
    frame = pd.DataFrame({"timestamp": ["2020-01-02"], "symbol": [bad], "close": [1.0]})
    with pytest.raises(DataError, match="row 1"):
        validate_panel(frame)
