"""Search spaces of the foundation adapters: valid configs inside the promised ranges."""

from __future__ import annotations

import importlib
import sys

import optuna
import pytest

from alphaforge.registry import MODELS, get_model

# The package each optional adapter imports and the hint its own tests skip with (test_toto.py,
# test_chronos.py): the adapter module itself raises ConfigError, which importorskip lets through
EXTRAS = {
    "toto": (
        "toto.model.toto",
        "toto-ts is not installed: pip install 'alphaforge[toto]' && "
        "pip install --no-deps toto-ts==0.2.0 gluonts==0.17.0",
    ),
    "chronos": (
        "chronos.chronos_bolt",
        "chronos-forecasting is not installed: pip install 'alphaforge[chronos]'",
    ),
}


def _require_extra(name: str) -> None:
    """Skip, with the install hint, when the package behind ``name``'s extra is missing."""
    if name in EXTRAS:
        module, hint = EXTRAS[name]
        pytest.importorskip(module, reason=hint)


@pytest.mark.parametrize("name", ["kronos", "toto", "chronos"])
def test_search_space_gives_valid_configs(name: str) -> None:
    _require_extra(name)
    module = MODELS[name].target.partition(":")[0]
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


@pytest.mark.parametrize("name", sorted(EXTRAS))
def test_search_space_test_skips_without_the_extra(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the package, the search-space test skips with the install hint (as the adapter's
    own tests do) instead of failing with the adapter's ConfigError."""
    package, hint = EXTRAS[name]
    parts = package.split(".")
    for i in range(1, len(parts) + 1):  # None in sys.modules: "import x" raises ImportError
        monkeypatch.setitem(sys.modules, ".".join(parts[:i]), None)
    # import the adapter afresh, as in a session without the package
    monkeypatch.delitem(sys.modules, MODELS[name].target.partition(":")[0], raising=False)
    with pytest.raises(pytest.skip.Exception, match="is not installed: pip install"):
        test_search_space_gives_valid_configs(name)
