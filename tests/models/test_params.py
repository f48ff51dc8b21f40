"""Composed params: every part field is a params field or passed at build time, declared once."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from alphaforge.errors import ConfigError
from alphaforge.models.base import require
from alphaforge.models.params import ComposedParams, Part, compose_params
from alphaforge.models.training import TrainConfig
from alphaforge.registry import MODELS, get_model

COMPOSED = sorted(
    name
    for name, entry in MODELS.items()
    if entry.family == "neural" and issubclass(get_model(name).Config, ComposedParams)
)


@dataclass(frozen=True)
class _Net:
    n_features: int
    width: int = 8
    depth: int = 2

    def __post_init__(self) -> None:
        require(self.width >= 1, self, "width", "an int >= 1")


@dataclass(frozen=True)
class _Window:
    lookback: int = 16


_NET = Part(_Net, "net", exclude=("n_features",))


def test_every_neural_model_is_composed() -> None:
    assert {"lstm", "gru", "transformer", "ranker", "gpt"} <= set(COMPOSED)


@pytest.mark.parametrize("name", COMPOSED)
def test_net_and_train_configs_carry_every_params_field(name: str) -> None:
    cls = get_model(name)
    params = cls.from_params(cls.test_params()).config
    for role, part in params.parts.items():
        keys = part.params_keys()
        fixed = {
            f.name: 1
            for f in dataclasses.fields(part.cls)
            if f.name not in keys and f.default is dataclasses.MISSING
        }
        built = params.build(role, **fixed)
        assert {f: getattr(built, f) for f in keys} == {
            f: getattr(params, k) for f, k in keys.items()
        }
    # the part's own defaults, unless the forecaster declares an override
    defaults = type(params)()
    for part in params.parts.values():
        for f in dataclasses.fields(part.cls):
            key = part.params_keys().get(f.name)
            if key is not None and f.default is not dataclasses.MISSING:
                want = defaults.default_overrides.get(key, f.default)
                assert getattr(defaults, key) == want, (name, key)


def test_compose_builds_validates_and_documents() -> None:
    Params = compose_params(
        "Params",
        module=__name__,
        net=_NET,
        extra=(_Window,),
        defaults={"depth": 3, "max_epochs": 4},
        doc="Test params.",
    )
    p = Params(width=4)
    assert [f.name for f in dataclasses.fields(p)][:4] == [
        "lookback",
        "width",
        "depth",
        "max_epochs",
    ]
    assert p.net_config(n_features=5) == _Net(n_features=5, width=4, depth=3)
    assert p.train_config() == TrainConfig(max_epochs=4)
    assert "depth=3" in Params.__doc__ and "``_Net`` (net): width, depth" in Params.__doc__
    with pytest.raises(ConfigError, match=r"Params: _Net\.width must be an int >= 1, got 0"):
        Params(width=0)
    with pytest.raises(ConfigError, match=r"TrainConfig\.patience"):
        Params(patience=-1)
    assert Params(patience=0).train_config().patience == 0  # 0: no early stopping
    with pytest.raises(TypeError, match="set by the params"):
        p.net_config(n_features=5, width=2)


def test_compose_rejects_ambiguous_declarations() -> None:
    with pytest.raises(TypeError, match="declared by two parts"):
        compose_params("P", module=__name__, net=_Net, extra=(_Window, _Window))
    with pytest.raises(TypeError, match="unknown fields"):
        compose_params("P", module=__name__, net=_NET, defaults={"widht": 3})
    with pytest.raises(TypeError, match="no fields"):
        Part(_Net, "net", exclude=("n_feature",))


def test_cross_part_check_runs_after_the_parts() -> None:
    def check(p: object) -> None:
        require(p.width >= p.lookback, p, "width", ">= lookback")

    Params = compose_params(
        "P", module=__name__, net=_NET, extra=(_Window,), check=check, defaults={"width": 16}
    )
    with pytest.raises(ConfigError, match=r"P\.width must be >= lookback, got 8"):
        Params(width=8)
