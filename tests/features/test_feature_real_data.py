"""Real prices (../shared/data, when present): fast path == reference on S&P 500 stocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaforge.data import load_panel
from alphaforge.features import build_features
from alphaforge.features._reference import reference_features

REAL = Path(__file__).resolve().parents[3] / "shared/data/sp500_100_daily_2012_2017.parquet"


def _first_symbols(n: int) -> pd.DataFrame:
    panel = load_panel(REAL, repair=True)  # the file holds a few impossible bars
    symbols = panel.index.get_level_values("symbol")
    return panel[symbols.isin(symbols.unique()[:n])]


@pytest.mark.slow
@pytest.mark.skipif(not REAL.exists(), reason=f"{REAL} not found")
@pytest.mark.parametrize(("catalogue", "n_symbols"), [("default", 20), ("alpha158", 5)])
def test_real_panel_matches_reference(catalogue: str, n_symbols: int) -> None:
    panel = _first_symbols(n_symbols)
    fast = build_features(panel, catalogue=catalogue)
    ref = reference_features(panel, catalogue=catalogue)
    for col in fast.columns:
        a, b = fast[col].to_numpy(), ref[col].to_numpy()
        assert (np.isnan(a) == np.isnan(b)).all(), col
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True, err_msg=col)
    assert not np.isinf(fast.to_numpy()).any()
