"""The contract suite itself: it must catch the failures it claims to catch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from alphaforge.models.base import BaseForecaster, Capabilities
from alphaforge.testing import check_forecaster, scramble_future, tiny_problem


@dataclass(frozen=True)
class _ColumnConfig:
    column: str = "ret_1"


class _Honest(BaseForecaster):
    """Predicts one column times a learned slope: passes every check."""

    Config = _ColumnConfig
    capabilities: ClassVar[Capabilities] = Capabilities(family="test")

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Any) -> None:
        x = X[self.config_.column].fillna(0.0)
        self.slope_ = float((x * y).sum() / (x * x).sum())

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.slope_ * X[self.config_.column].fillna(0.0).to_numpy()

    def _save_state(self, path: Any) -> dict[str, Any]:
        return {"slope": self.slope_}

    def _load_state(self, path: Any, state: dict[str, Any]) -> None:
        self.slope_ = state["slope"]


class _DemeansOverPredictFrame(_Honest):
    """Leaks: subtracts each symbol's mean over the whole prediction frame (future included)."""

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        col = X[self.config_.column].fillna(0.0)
        return (col - col.groupby(level="symbol").transform("mean")).to_numpy()


class _MutatesInput(_Honest):
    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Any) -> None:
        super()._fit(X, y, valid)
        y.iloc[0] = 123.0  # y here may be the caller's own object


class _PublicState(_Honest):
    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Any) -> None:
        super()._fit(X, y, valid)
        self.slope = self.slope_


class _ForgetsState(_Honest):
    def _save_state(self, path: Any) -> dict[str, Any]:
        return {"slope": round(self.slope_, 2)}


class _Unseeded(_Honest):
    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Any) -> None:
        super()._fit(X, y, valid)
        self.slope_ += np.random.default_rng().normal(0, 1e-9)  # ignores random_state


def test_honest_model_passes() -> None:
    check_forecaster(_Honest)
    check_forecaster(_Honest({"column": "signal"}, random_state=1))


@pytest.mark.parametrize(
    ("cls", "check"),
    [
        (_DemeansOverPredictFrame, "future_perturbation"),
        (_MutatesInput, "inputs_unchanged"),
        (_PublicState, "learned_state_naming"),
        (_ForgetsState, "save_load"),
        (_Unseeded, "refit"),
    ],
)
def test_contract_catches_broken_models(cls: type[BaseForecaster], check: str) -> None:
    with pytest.raises(AssertionError, match=rf"check_forecaster\[{cls.__name__}\] {check}:"):
        check_forecaster(cls)


def test_tiny_problem_shape_warmup_and_signal() -> None:
    X, y = tiny_problem(n_symbols=3, n_bars=200, n_features=6, horizon=2)
    assert X.shape == (600, 6) and list(X.columns[:4]) == ["signal", "ret_1", "rv_20", "ret_5"]
    assert X.index.names == ["timestamp", "symbol"] and X.index.is_monotonic_increasing
    first = X.xs(X.index.get_level_values(0)[0], level="timestamp")
    assert first["ret_1"].isna().all() and X["rv_20"].isna().sum() == 19 * 3
    assert y.isna().sum() == 2 * 3  # last h bars of each symbol
    # y at t is the sum of ret_1 at t+1 .. t+h
    r = X["ret_1"].unstack("symbol")
    np.testing.assert_allclose(y.unstack("symbol").iloc[:-2], (r.shift(-1) + r.shift(-2)).iloc[:-2])
    assert X["signal"].corr(y) > 0.1
    vol_X, vol_y = tiny_problem(label="volatility")
    assert (vol_y.dropna() >= 0).all()


def test_tiny_problem_features_look_backward() -> None:
    X, _ = tiny_problem(n_bars=120, seed=3)
    cut = X.index.get_level_values("timestamp").unique()[80]
    X_again, _ = tiny_problem(n_bars=81, seed=3)  # same draws, history ends at the cut
    past = X.index.get_level_values("timestamp") <= cut
    pd.testing.assert_frame_equal(X[past].iloc[:, :4], X_again.iloc[:, :4])


def test_scramble_future_keeps_past_and_index() -> None:
    X, _ = tiny_problem()
    cut = X.index.get_level_values("timestamp").unique()[100]
    out = scramble_future(X, cut)
    past = X.index.get_level_values("timestamp") <= cut
    pd.testing.assert_frame_equal(out[past], X[past])
    assert out.index.equals(X.index) and not np.allclose(out[~past].fillna(0), X[~past].fillna(0))
