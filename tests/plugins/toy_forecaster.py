"""A model written outside alphaforge: one file, and one registry line makes it a first-class
model.

- ridge regression on standardised features, NaN read as the training mean (0 after scaling)
- row-wise: a row's forecast reads that row only, so it cannot look ahead
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import optuna
import pandas as pd

from alphaforge.models.base import BaseForecaster, Capabilities, Valid, features_array, require


@dataclass(frozen=True)
class ToyRidgeConfig:
    alpha: float = 1.0  # ridge penalty on standardised features

    def __post_init__(self) -> None:
        require(self.alpha >= 0, self, "alpha", "a float >= 0")


class ToyRidgeForecaster(BaseForecaster):
    """Ridge regression on standardised features."""

    Config: ClassVar[type] = ToyRidgeConfig
    capabilities: ClassVar[Capabilities] = Capabilities(family="linear")

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        return {"alpha": trial.suggest_float("alpha", 1e-3, 1e3, log=True)}

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        A = features_array(X)
        self.mean_ = np.nan_to_num(np.nanmean(A, axis=0))
        self.scale_ = np.nan_to_num(np.nanstd(A, axis=0), nan=1.0) + 1e-12
        Z = self._standardise(A)
        target = y.to_numpy(np.float64)
        self.intercept_ = float(target.mean())
        gram = Z.T @ Z + self.config_.alpha * np.eye(Z.shape[1])
        self.coef_ = np.linalg.solve(gram, Z.T @ (target - self.intercept_))

    def _standardise(self, A: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.nan_to_num((A - self.mean_) / self.scale_)

    def _predict(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        return self._standardise(features_array(X)) @ self.coef_ + self.intercept_

    def _save_state(self, path: Path) -> dict[str, Any]:
        return {k: getattr(self, f"{k}_").tolist() for k in ("mean", "scale", "coef")} | {
            "intercept": self.intercept_
        }

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        for k in ("mean", "scale", "coef"):
            setattr(self, f"{k}_", np.asarray(state[k], dtype=np.float64))
        self.intercept_ = float(state["intercept"])
