"""Real prices (../shared/data, when present): fast path == reference on 20 S&P 500 stocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alphaforge.data import load_panel
from alphaforge.features import build_features
from alphaforge.features._reference import reference_features

REAL = Path(__file__).resolve().parents[3] / "shared/data/sp500_100_daily_2012_2017.parquet"


@pytest.mark.slow
@pytest.mark.skipif(not REAL.exists(), reason=f"{REAL} not found")
def test_real_panel_matches_reference() -> None:
    panel = load_panel(REAL, repair=True)  # the file holds a few impossible bars
    symbols = panel.index.get_level_values("symbol")
    panel = panel[symbols.isin(symbols.unique()[:20])]
    fast, ref = build_features(panel), reference_features(panel)
    for col in fast.columns:
        a, b = fast[col].to_numpy(), ref[col].to_numpy()
        assert (np.isnan(a) == np.isnan(b)).all(), col
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True, err_msg=col)
    assert not np.isinf(fast.to_numpy()).any()
