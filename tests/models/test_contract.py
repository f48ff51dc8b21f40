"""Every registry entry passes the public forecaster contract (alphaforge.testing)."""

from __future__ import annotations

import pytest

from alphaforge.registry import MODELS
from alphaforge.testing import check_forecaster


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registered_model_passes_contract(name: str) -> None:
    check_forecaster(name)
