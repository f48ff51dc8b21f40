"""Fixtures of the foundation-model tests: a small panel."""

from __future__ import annotations

import pandas as pd
import pytest

from alphaforge.testing import tiny_problem


@pytest.fixture(scope="session")
def panel() -> tuple[pd.DataFrame, pd.Series]:
    return tiny_problem(n_symbols=3, n_bars=90, n_features=5, seed=3)
