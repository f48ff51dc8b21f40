"""Every registry entry passes the public forecaster contract (alphaforge.testing)."""

from __future__ import annotations

import pytest

from alphaforge.errors import ConfigError
from alphaforge.registry import MODELS, get_model
from alphaforge.testing import check_forecaster


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registered_model_passes_contract(name: str) -> None:
    if MODELS[name].extra is not None:  # optional packages: skip, naming the install hint
        try:
            get_model(name)
        except ConfigError as exc:
            pytest.skip(f"{name}: optional dependency missing: {exc}")
    check_forecaster(name)
