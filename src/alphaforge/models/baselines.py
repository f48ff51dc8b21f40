"""Reference forecasts every model has to beat before it is worth its compute.

- ZeroForecaster: predicts 0, the no-skill forecast of a (demeaned) return.
- TrailingMeanForecaster: per-symbol mean of the training labels (optionally the last
  ``window`` of them), pooled mean for symbols never seen in training.
- LastValueForecaster: predicts one feature column as is, e.g. ``ret_1`` (momentum of one bar)
  or ``rv_20`` (yesterday's realised volatility as tomorrow's).
- GarchForecaster: per-symbol GARCH(1,1) on the return column (Bollerslev, 1986, "Generalized
  Autoregressive Conditional Heteroskedasticity", J. Econometrics 31), fitted with ``arch``;
  predict runs the variance recursion forward over X, so row t reads returns at or before t.
All of them look only backward: labels enter through ``fit`` only, features row by row.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphaforge.errors import ConfigError, DataError
from alphaforge.models.base import BaseForecaster, Capabilities, Valid, require

logger = logging.getLogger(__name__)


def _symbols(X: pd.DataFrame | pd.Series) -> pd.Index:
    return X.index.get_level_values("symbol")


def _check_column(model: BaseForecaster, column: str) -> None:
    if column not in model.feature_names_in_:
        raise ConfigError(
            f"{type(model).__name__}: column {column!r} is not in X; "
            f"available: {', '.join(model.feature_names_in_[:20])}"
        )


class ZeroForecaster(BaseForecaster):
    """Predicts 0 for every row: the forecast a return model must beat to have any skill."""

    capabilities: ClassVar[Capabilities] = Capabilities(family="baseline", label_kinds=("return",))

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        pass  # nothing to learn; base fit records feature_names_in_

    def _predict(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        return np.zeros(len(X))


# ---------------------------------------------------------------------------- trailing mean
@dataclass(frozen=True)
class TrailingMeanConfig:
    window: int | None = None  # mean of the last `window` training labels per symbol; None: all

    def __post_init__(self) -> None:
        require(self.window is None or self.window >= 1, self, "window", "None or an int >= 1")


class TrailingMeanForecaster(BaseForecaster):
    """Per-symbol mean of the training labels; constant over the prediction window.

    Learned state: ``means_`` (``pd.Series`` symbol -> mean label) and ``global_mean_`` (mean of
    the same labels over all symbols, predicted for symbols not seen in training).
    """

    Config = TrailingMeanConfig
    capabilities: ClassVar[Capabilities] = Capabilities(family="baseline")

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        if self.config_.window is not None:
            order = np.argsort(y.index.get_level_values("timestamp"), kind="stable")
            y = y.iloc[order].groupby(level="symbol", sort=False).tail(self.config_.window)
        self.means_ = y.groupby(level="symbol").mean().astype(np.float64)
        self.global_mean_ = float(y.mean())

    def _predict(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        out = _symbols(X).map(self.means_).to_numpy(dtype=np.float64, na_value=np.nan)
        return np.where(np.isnan(out), self.global_mean_, out)

    def _save_state(self, path: Path) -> dict[str, Any]:
        pairs = list(zip(self.means_.index.tolist(), self.means_.tolist(), strict=True))
        return {"means": pairs, "global_mean": self.global_mean_}

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        symbols, means = zip(*state["means"], strict=True) if state["means"] else ((), ())
        self.means_ = pd.Series(means, index=pd.Index(symbols, name="symbol"), dtype=np.float64)
        self.global_mean_ = float(state["global_mean"])


# ---------------------------------------------------------------------------- last value
@dataclass(frozen=True)
class LastValueConfig:
    column: str = "ret_1"  # feature predicted as is
    fill_value: float | None = None  # predicted where the column is NaN; None keeps NaN


class LastValueForecaster(BaseForecaster):
    """Predicts ``X[column]``: the last realised value as the forecast of the next one."""

    Config = LastValueConfig
    capabilities: ClassVar[Capabilities] = Capabilities(family="baseline")

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        _check_column(self, self.config_.column)

    def _predict(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        out = X[self.config_.column].to_numpy(dtype=np.float64, na_value=np.nan)
        fill = self.config_.fill_value
        return out if fill is None else np.where(np.isnan(out), fill, out)


# ---------------------------------------------------------------------------- GARCH(1,1)
@dataclass(frozen=True)
class GarchConfig:
    column: str = "ret_1"  # one-bar simple or log return, in fractions (0.01 = 1%)
    horizon: int = 1  # h: bars summed in the volatility label
    mean: Literal["zero", "constant"] = "zero"
    min_obs: int = 100  # fewer returns in the training window: pooled parameters
    scale: float = 100.0  # returns are fitted in percent, where the optimiser is well scaled

    def __post_init__(self) -> None:
        require(self.horizon >= 1, self, "horizon", "an int >= 1")
        require(self.min_obs >= 10, self, "min_obs", "an int >= 10")
        require(self.scale > 0, self, "scale", "> 0")


# columns of GarchForecaster.params_
_PARAMS = ("mu", "omega", "alpha", "beta", "backcast")


class GarchForecaster(BaseForecaster):
    """GARCH(1,1) forecast of realised volatility over the next ``horizon`` bars.

    With ``e_t = r_t - mu`` and ``s2_t`` the variance of ``r_t`` given returns before t::

        s2_{t+1} = omega + alpha * e_t**2 + beta * s2_t
        f_1 = s2_{t+1},   f_k = omega + (alpha + beta) * f_{k-1}
        y_pred_t = sqrt(f_1 + ... + f_h)

    ``y_pred_t`` is in the units of the return column (fractions), on the scale of a label
    ``sqrt(r_{t+1}**2 + ... + r_{t+h}**2)``: it forecasts the root of the expected sum of squared
    returns (``mu`` ignored). Because of Jensen's inequality that is above the expected label
    (for h = 1 and normal returns, E|r| = 0.80 sigma), so compare on rank-based or QLIKE metrics
    or calibrate a scale if you need an unbiased level.

    Fit: per symbol on its training-window returns (NaN returns dropped) with
    ``arch_model(vol="GARCH", p=1, q=1, rescale=False)`` on returns times ``scale``. Symbols
    with fewer than ``min_obs`` returns, failed fits and symbols unseen in fit use pooled
    parameters (the median over fitted symbols). Predict: the recursion restarts at each
    symbol's first return in X from its training variance level (arch's backcast, so on the
    training rows it reproduces arch's conditional variance), walks forward through X (a later
    NaN return is replaced by its expectation ``s2_t``), and row t reads returns at or before t
    only. Rows of a symbol in X are taken as its consecutive bars.

    Learned state: ``params_`` (``pd.DataFrame`` symbol x (mu, omega, alpha, beta, backcast), in
    scaled units) and ``pooled_`` (``pd.Series`` of the same five).
    """

    Config = GarchConfig
    capabilities: ClassVar[Capabilities] = Capabilities(
        family="baseline", label_kinds=("volatility",), needs_context=True
    )
    _keep_unlabelled_rows = True  # fitted on the return column, not on y

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        cfg = self.config_
        _check_column(self, cfg.column)
        returns = X[cfg.column].iloc[
            np.argsort(X.index.get_level_values("timestamp"), kind="stable")
        ]
        rows, skipped = {}, []
        for symbol, r in returns.groupby(level="symbol", sort=True):
            r = r.dropna().to_numpy(np.float64) * cfg.scale
            fitted = _fit_garch(r, cfg.mean) if len(r) >= cfg.min_obs else None
            if fitted is None:
                skipped.append(symbol)
            else:
                rows[symbol] = fitted
        if not rows:  # no symbol long enough on its own: fit one model on all of them
            pooled = _fit_garch(returns.dropna().to_numpy(np.float64) * cfg.scale, cfg.mean)
            if pooled is None:
                raise DataError(
                    f"GARCH fit failed: {returns.notna().sum()} returns in "
                    f"column {cfg.column!r}, need >= {cfg.min_obs}"
                )
            self.pooled_ = pd.Series(pooled, index=list(_PARAMS))
        else:
            fitted = pd.DataFrame.from_dict(rows, orient="index", columns=list(_PARAMS))
            self.pooled_ = fitted.median()
        if skipped:
            logger.info("GARCH: pooled parameters for %d symbols: %s", len(skipped), skipped[:10])
        self.params_ = pd.DataFrame.from_dict(
            rows, orient="index", columns=list(_PARAMS), dtype=np.float64
        ).rename_axis("symbol")

    def _predict(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        cfg = self.config_
        # wide (T, N) view of the panel: T timestamps x N symbols, in time order
        t_code, stamps = pd.factorize(X.index.get_level_values("timestamp"), sort=True)
        s_code, symbols = pd.factorize(_symbols(X), sort=True)
        returns = np.full((len(stamps), len(symbols)), np.nan)
        present = np.zeros(returns.shape, dtype=bool)
        returns[t_code, s_code] = X[cfg.column].to_numpy(np.float64, na_value=np.nan) * cfg.scale
        present[t_code, s_code] = True
        p = self.params_.reindex(symbols).to_numpy(np.float64)  # (N, 5), NaN rows: unseen
        p = np.where(np.isnan(p), self.pooled_.to_numpy(np.float64)[None, :], p)
        mu, omega, alpha, beta, backcast = p.T
        if cfg.mean == "zero":
            mu = np.zeros_like(mu)
        # s2: variance of the current bar's return given earlier bars, (N,); arch's start value
        s2 = omega + (alpha + beta) * backcast
        f1 = np.empty_like(returns)  # (T, N) one-step-ahead variance after bar t
        started = np.zeros(len(symbols), dtype=bool)  # seen a return yet (arch starts there)
        for t in range(len(stamps)):  # recursive in time, vectorised over symbols
            e2 = (returns[t] - mu) ** 2
            known = ~np.isnan(e2)
            e2 = np.where(known, e2, s2)  # unknown return: its expectation
            f1[t] = omega + alpha * e2 + beta * s2
            started |= known & present[t]
            s2 = np.where(present[t] & started, f1[t], s2)  # absent rows do not advance
        # sum_{k=1..h} f_k = a * omega + b * f_1 with phi = alpha + beta, per symbol
        powers = (alpha + beta)[None, :] ** np.arange(cfg.horizon)[:, None]  # (h, N)
        b = powers.sum(axis=0)
        a = (np.arange(cfg.horizon - 1, 0, -1)[:, None] * powers[:-1]).sum(axis=0)
        total = a[None, :] * omega[None, :] + b[None, :] * f1  # (T, N)
        return np.sqrt(total[t_code, s_code]) / cfg.scale

    def _save_state(self, path: Path) -> dict[str, Any]:
        params = [
            [s, *map(float, row)]
            for s, row in zip(self.params_.index.tolist(), self.params_.to_numpy(), strict=True)
        ]
        return {
            "columns": list(_PARAMS),
            "params": params,
            "pooled": [float(self.pooled_[k]) for k in _PARAMS],
        }

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        rows = state["params"]
        self.params_ = pd.DataFrame(
            [r[1:] for r in rows],
            columns=list(_PARAMS),
            index=pd.Index([r[0] for r in rows], name="symbol"),
            dtype=np.float64,
        )
        self.pooled_ = pd.Series(state["pooled"], index=list(_PARAMS), dtype=np.float64)

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"min_obs": 30}


def _fit_garch(r: npt.NDArray[np.float64], mean: str) -> tuple[float, ...] | None:
    """Fit GARCH(1,1) to scaled returns; ``(mu, omega, alpha, beta, backcast)`` or ``None``."""
    from arch import arch_model  # imported here: the other baselines do not need it

    model = arch_model(
        r,
        mean="Zero" if mean == "zero" else "Constant",
        vol="GARCH",
        p=1,
        q=1,
        dist="normal",
        rescale=False,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence is checked below
            res = model.fit(disp="off", show_warning=False)
    except (ValueError, RuntimeError, ArithmeticError, np.linalg.LinAlgError) as exc:
        logger.warning("GARCH fit failed on %d returns: %s", len(r), exc)
        return None
    if res.convergence_flag != 0:
        logger.warning("GARCH fit did not converge on %d returns", len(r))
        return None
    params = res.params
    mu = float(params.get("mu", 0.0))
    backcast = float(model.volatility.backcast(r - mu))
    return mu, float(params["omega"]), float(params["alpha[1]"]), float(params["beta[1]"]), backcast
