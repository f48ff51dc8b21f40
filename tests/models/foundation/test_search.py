"""Search spaces of the foundation adapters: valid configs inside the promised ranges."""

from __future__ import annotations

import importlib

import optuna
import pytest

from alphaforge.registry import MODELS, get_model


@pytest.mark.parametrize("name", ["kronos", "toto", "chronos"])
def test_search_space_gives_valid_configs(name: str) -> None:
    module = MODELS[name].target.partition(":")[0]
    if name != "kronos":
        pytest.importorskip(module, reason=f"the {name!r} extra is not installed")
    assert importlib.import_module(module) is not None
    cls = get_model(name)
    assert MODELS[name].family == "foundation" and MODELS[name].extra == name
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(25):
        params = cls.search_space(study.ask())
        config = cls.from_params(params).config
        if name == "kronos":
            assert 0.05 <= config.temperature <= 0.40 and 0.65 <= config.top_p <= 0.95
            assert config.top_k == 0 or 12 <= config.top_k <= 48
            assert 96 <= config.num_samples <= 320 and 128 <= config.max_context <= 320
            assert 1.0 <= config.clip <= 3.0
        elif name == "toto":
            assert 64 <= config.num_samples <= 4096
        else:
            assert config.max_context <= 2048 and config.quantile_mode in ("levels", "interpolate")
