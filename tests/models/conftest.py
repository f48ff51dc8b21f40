"""Shared fixtures for model tests: tiny panels from alphaforge.testing (no data/features)."""

from __future__ import annotations

import pandas as pd
import pytest

from alphaforge.testing import tiny_problem


@pytest.fixture(scope="session")
def return_panel() -> tuple[pd.DataFrame, pd.Series]:
    return tiny_problem(n_symbols=8, n_bars=250, n_features=6, seed=1)


@pytest.fixture(scope="session")
def vol_panel() -> tuple[pd.DataFrame, pd.Series]:
    return tiny_problem(n_symbols=4, n_bars=600, n_features=4, seed=2, label="volatility")
