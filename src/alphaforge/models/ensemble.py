"""Ensembles fitted only on out-of-fold predictions: residual stacking, learned fusion, blends.

A second-level model that learns from its members' in-sample predictions learns how well they
memorised the training window, not how well they forecast. Every learned ensemble here therefore
learns from :func:`walk_forward_predict`: an inner walk-forward inside the training window that
predicts each block with members trained (and early-stopped) only on bars before it, with a purge
of ``purge`` bars between them. The members are then refitted on the whole training window for
prediction. Ensembles are forecasters (:class:`~alphaforge.models.base.BaseForecaster`), so they
pass the same contract suite as every model, future perturbation included.

- :class:`ResidualForecaster` (``residual``): base model, then a second model trained on the base
  model's out-of-fold residuals with the same features; prediction = base + residual.
- :class:`FusionForecaster` (``fusion``): OLS, ridge or non-negative least squares (optionally
  summing to one) over the members' out-of-fold predictions.
- :class:`WeightedForecaster` (``weighted``): fixed user weights or equal weights; optionally a
  rank average (per-timestamp cross-sectional ranks) for cross-sectional use.

A member is a registry name or a mapping ``{name, params, features, label}``; ``features``
restricts the columns it sees and ``label`` is its display name (default: the registry name).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.optimize import minimize, nnls

from alphaforge.errors import ConfigError, DataError
from alphaforge.labels import LabelSpec
from alphaforge.models.base import BaseForecaster, Capabilities, Valid, predict_rows, require
from alphaforge.registry import MODELS, get_model

logger = logging.getLogger(__name__)

__all__ = [
    "FusionForecaster",
    "Member",
    "ResidualForecaster",
    "WeightedForecaster",
    "fit_fusion",
    "parse_member",
    "walk_forward_predict",
]

FusionMethod = Literal["ols", "ridge", "nnls"]
ENSEMBLE_CAPS = Capabilities(
    family="ensemble", supports_valid=True, early_stopping=False, needs_sequence=True
)
"""Ensembles read context rows (a member may be a sequence model) and pass ``valid`` on."""


# ----------------------------------------------------------------------------- members
@dataclass(frozen=True)
class Member:
    """One ensemble member: a registry model with its params and optional feature subset."""

    name: str
    params: Mapping[str, Any]
    features: tuple[str, ...] | None
    key: str

    def build(self, seed: int) -> BaseForecaster:
        """An unfitted forecaster for this member."""
        return get_model(self.name).from_params(dict(self.params), random_state=seed)

    def view(self, X: pd.DataFrame) -> pd.DataFrame:
        """The columns of ``X`` this member sees."""
        if self.features is None:
            return X
        missing = [f for f in self.features if f not in X.columns]
        if missing:
            raise DataError(f"ensemble member {self.key!r}: features {missing[:10]} are not in X")
        return X[list(self.features)]


def parse_member(spec: Any) -> Member:
    """A :class:`Member` from a registry name or ``{name, params, features, label}``.

    Raises:
        ConfigError: Unknown model name, unknown keys or bad types.
    """
    if isinstance(spec, Member):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"ensemble member must be a model name or a mapping, got {spec!r}")
    unknown = sorted(set(spec) - {"name", "params", "features", "label"})
    if unknown:
        raise ConfigError(
            f"ensemble member: unknown key(s) {unknown}; valid: name, params, features, label"
        )
    name = spec.get("name")
    if name not in MODELS:
        raise ConfigError(
            f"ensemble member: unknown model {name!r}; valid: {', '.join(sorted(MODELS))}"
        )
    if MODELS[name].family == "ensemble":
        raise ConfigError(f"ensemble member {name!r}: ensembles of ensembles are not supported")
    params = dict(spec.get("params") or {})
    feats = spec.get("features")
    if feats is not None and (isinstance(feats, str) or not all(isinstance(f, str) for f in feats)):
        raise ConfigError(f"ensemble member {name!r}: features must be a list of column names")
    return Member(
        name, params, None if feats is None else tuple(feats), str(spec.get("label") or name)
    )


def _members(specs: Sequence[Any], what: str) -> list[Member]:
    members = [parse_member(s) for s in specs]
    if not members:
        raise ConfigError(f"{what}: needs at least one member")
    keys = [m.key for m in members]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{what}: member names {keys} repeat; give members distinct 'label's")
    return members


# ----------------------------------------------------------------------------- out of fold
def _inner_blocks(
    stamps: npt.NDArray[Any], n_folds: int, purge: int, stop_frac: float
) -> list[tuple[Any, Any, Any, Any]]:
    """``(fit_end, stop_end, block_start, block_end)`` timestamp bounds per inner fold.

    Rows with ``t < fit_end`` fit, ``fit_end <= t < stop_end`` (after a purge) early-stop,
    ``block_start <= t <= block_end`` are predicted; ``purge`` timestamps separate each range.
    """
    n = len(stamps)
    edges = np.linspace(0, n, n_folds + 2).round().astype(int)
    out = []
    for b in range(1, n_folds + 1):
        start, end = edges[b], edges[b + 1]
        train_n = start - purge  # timestamps usable for fitting and stopping
        stop_n = max(1, int(round(stop_frac * train_n)))
        fit_n = train_n - stop_n - purge
        if fit_n < 2 or end <= start:
            raise DataError(
                f"walk_forward_predict: {n} training timestamps are too few for "
                f"{n_folds} inner folds with purge {purge}"
            )
        out.append((stamps[fit_n], stamps[train_n], stamps[start], stamps[end - 1]))
    return out


def walk_forward_predict(
    members: Sequence[Any],
    X: pd.DataFrame,
    y: pd.Series,
    *,
    n_folds: int = 3,
    purge: int = 1,
    stop_frac: float = 0.2,
    seed: int = 0,
    label: LabelSpec | None = None,
) -> pd.DataFrame:
    """Out-of-fold predictions of every member on bars it never trained or early-stopped on.

    The labelled timestamps of ``X`` are cut into ``n_folds + 1`` blocks; block ``b >= 1`` is
    predicted by each member fitted on the timestamps before it, less ``purge`` (the label
    horizon, so no training label reaches into the block), whose last ``stop_frac`` (after
    another purge) is the member's early-stopping window. Block 0 is only ever trained on.

    Args:
        members: Registry names, mappings (see :func:`parse_member`) or :class:`Member`.
        X, y: Training features and label (same index); unlabelled rows are context only.
        n_folds: Inner folds (predicted blocks).
        purge: Timestamps dropped between fitted, stopping and predicted ranges (>= horizon).
        stop_frac: Share of each inner training range used for early stopping.
        seed: Member ``i`` is seeded with ``seed + i``.
        label: What ``y`` is, passed on to every member's ``fit``.

    Returns:
        Frame on the predicted labelled rows (index like ``X``), one column per member key, plus
        ``"fold"`` (the inner fold) and ``"y"`` (the label).

    Raises:
        DataError: Too few timestamps for the folds.
    """
    mem = _members(members, "walk_forward_predict")
    if n_folds < 1 or purge < 0 or not 0.0 < stop_frac < 1.0:
        raise ConfigError(
            f"walk_forward_predict: need n_folds >= 1, purge >= 0, 0 < stop_frac"
            f" < 1; got {n_folds}, {purge}, {stop_frac}"
        )
    labelled = y.notna().to_numpy()
    ts = X.index.get_level_values("timestamp")
    stamps = np.unique(ts[labelled])
    parts = []
    protos = [m.build(seed + i) for i, m in enumerate(mem)]  # validated once, cloned per fold
    for k, (fit_end, stop_end, start, end) in enumerate(
        _inner_blocks(stamps, n_folds, purge, stop_frac)
    ):
        rows = X.index[labelled & (ts >= start) & (ts <= end)]
        out = pd.DataFrame(index=rows)
        for m, proto in zip(mem, protos, strict=True):
            model = proto.clone()
            Xm = m.view(X)
            if model.capabilities.supports_valid:
                fit = np.asarray(ts < fit_end)
                stop = np.asarray((ts >= _after(stamps, fit_end, purge)) & (ts < stop_end))
                model.fit(Xm[fit], y[fit], valid=(Xm[stop], y[stop]), label=label)
            else:
                fit = np.asarray(ts < stop_end)
                model.fit(Xm[fit], y[fit], label=label)
            out[m.key] = predict_rows(model, Xm, rows).to_numpy(np.float64)
        out["fold"] = k
        out["y"] = y.reindex(rows).to_numpy(np.float64)
        parts.append(out)
    return pd.concat(parts)


def _after(stamps: npt.NDArray[Any], t: Any, purge: int) -> Any:
    """The timestamp ``purge`` steps after ``t`` in ``stamps`` (``t`` itself when purge is 0)."""
    i = int(np.searchsorted(stamps, t)) + purge
    return stamps[min(i, len(stamps) - 1)]


# ----------------------------------------------------------------------------- fusion
def fit_fusion(
    P: npt.ArrayLike,
    y: npt.ArrayLike,
    method: FusionMethod = "ridge",
    *,
    alpha: float = 1.0,
    intercept: bool = True,
    sum_to_one: bool = False,
) -> tuple[npt.NDArray[np.float64], float]:
    """Combination weights of prediction columns ``P`` (n, m) for target ``y`` (n,).

    Columns are scaled to unit RMS before fitting so that ``alpha`` (ridge) means the same for
    any label scale; the returned weights apply to the unscaled columns.

    Args:
        method: ``"ols"``, ``"ridge"`` (L2 penalty ``alpha`` on the scaled weights) or
            ``"nnls"`` (weights >= 0).
        intercept: Fit an intercept (else it is 0).
        sum_to_one: With ``nnls``: weights >= 0 that sum to one (a convex combination).

    Returns:
        ``(weights (m,), intercept)``.

    Raises:
        DataError: Non-finite inputs or fewer rows than columns.
        ConfigError: Unknown method, ``sum_to_one`` without ``nnls``.
    """
    P = np.asarray(P, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if P.ndim != 2 or y.shape != (P.shape[0],):
        raise DataError(f"fit_fusion: P must be (n, m) and y (n,), got {P.shape} and {y.shape}")
    if not (np.isfinite(P).all() and np.isfinite(y).all()):
        raise DataError("fit_fusion: predictions and labels must be finite")
    n, m = P.shape
    if n <= m:
        raise DataError(f"fit_fusion: {n} out-of-fold rows for {m} members; need more rows")
    if method not in ("ols", "ridge", "nnls"):
        raise ConfigError(f"fit_fusion: method must be 'ols', 'ridge' or 'nnls', got {method!r}")
    if sum_to_one and method != "nnls":
        raise ConfigError("fit_fusion: sum_to_one needs method='nnls'")
    scale = np.sqrt(np.mean(P**2, axis=0))
    scale[scale == 0] = 1.0
    Z = P / scale
    zm, ym = (Z.mean(axis=0), y.mean()) if intercept else (np.zeros(m), 0.0)
    Zc, yc = Z - zm, y - ym
    if sum_to_one:
        # convex weights on the unscaled columns: minimise |Pc w - yc|^2, w >= 0, sum w = 1
        Pc = P - (P.mean(axis=0) if intercept else 0.0)
        res = minimize(
            lambda w: float(np.sum((Pc @ w - yc) ** 2)),
            np.full(m, 1.0 / m),
            jac=lambda w: 2.0 * Pc.T @ (Pc @ w - yc),
            method="SLSQP",
            bounds=[(0.0, 1.0)] * m,
            constraints=[{"type": "eq", "fun": lambda w: float(np.sum(w) - 1.0)}],
        )
        w = np.clip(res.x, 0.0, None)
        w /= w.sum()
        b = float(ym - (P.mean(axis=0) @ w if intercept else 0.0))
        return w, b
    if method == "nnls":
        wz, _ = nnls(Zc, yc)
    elif method == "ridge":
        wz = np.linalg.solve(Zc.T @ Zc + alpha * np.eye(m), Zc.T @ yc)
    else:
        wz = np.linalg.lstsq(Zc, yc, rcond=None)[0]
    w = wz / scale
    return w, float(ym - zm @ wz)


# ----------------------------------------------------------------------------- forecasters
class _Ensemble(BaseForecaster):
    capabilities: ClassVar[Capabilities] = ENSEMBLE_CAPS
    _keep_unlabelled_rows = True  # context rows for sequence members

    @classmethod
    def _member_specs(cls, config: Any) -> list[Any]:
        return list(config.members)

    @classmethod
    def member_keys(cls, params: Mapping[str, Any]) -> list[str]:
        """Display names of the members configured by ``params`` (defaults filled in)."""
        return [parse_member(s).key for s in cls._member_specs(cls._make_config(params))]

    def _oof(self, members: Sequence[Member], X: pd.DataFrame, y: pd.Series) -> pd.DataFrame:
        c = self.config_
        return walk_forward_predict(
            members,
            X,
            y,
            n_folds=c.inner_folds,
            purge=c.purge,
            stop_frac=c.stop_frac,
            seed=self.seed_,
            label=self.label_,
        )

    def _fit_member(
        self, m: Member, seed: int, X: pd.DataFrame, y: pd.Series, valid: Valid | None
    ) -> BaseForecaster:
        model = m.build(seed)
        Xm = m.view(X)
        if valid is not None and model.capabilities.supports_valid:
            return model.fit(Xm, y, valid=(m.view(valid[0]), valid[1]), label=self.label_)
        return model.fit(Xm, y, label=self.label_)

    @staticmethod
    def _save_member(model: BaseForecaster, path: Path) -> None:
        model.save(path)

    @staticmethod
    def _load_member(path: Path) -> BaseForecaster:
        return BaseForecaster.load(path)


def _check_oof(cfg: Any) -> None:
    require(cfg.inner_folds >= 1, cfg, "inner_folds", "an int >= 1")
    require(cfg.purge >= 0, cfg, "purge", "an int >= 0 (the label horizon or more)")
    require(0.0 < cfg.stop_frac < 1.0, cfg, "stop_frac", "a float in (0, 1)")


@dataclass(frozen=True)
class ResidualConfig:
    base: Any = "lightgbm"  # member spec: registry name or {name, params, features, label}
    residual: Any = "transformer"  # learns y - base's out-of-fold prediction
    inner_folds: int = 3  # inner walk-forward folds giving the base's out-of-fold residuals
    purge: int = 1  # bars between inner ranges; run_experiment raises it to the label horizon
    stop_frac: float = 0.2  # share of each inner training range used for early stopping

    def __post_init__(self) -> None:
        _check_oof(self)
        _members([self.base, self.residual], "residual")


class ResidualForecaster(_Ensemble):
    """Base model plus a model of its out-of-fold residuals (``kind: residual``).

    ``fit``: (1) :func:`walk_forward_predict` gives the base model's predictions on inner blocks
    it never trained on; (2) the residual model is fitted on ``y - base_oof`` on those rows, with
    the same features (every row stays as sequence context), early-stopping on the valid
    window's residuals of (3) the base model refitted on the whole training window.
    ``predict`` = base + residual.

    Attributes (after fit): ``base_``, ``residual_`` (fitted members), ``oof_`` (frame of the
    out-of-fold rows: ``base``, ``y``, ``fold``).
    """

    Config: ClassVar[type] = ResidualConfig

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        c = self.config_
        base, resid = _members([c.base, c.residual], "residual")
        oof = self._oof([base], X, y)
        self.oof_ = oof.rename(columns={base.key: "base"})
        target = pd.Series(np.nan, index=X.index, name=y.name)
        target.loc[oof.index] = oof["y"].to_numpy() - oof[base.key].to_numpy()
        self.base_ = self._fit_member(base, self.seed_, X, y, valid)
        rvalid = None
        if valid is not None:
            Xv, yv = valid
            ctx = pd.concat([X, Xv[~Xv.index.isin(X.index)]])
            rvalid = (Xv, yv - predict_rows(self.base_, base.view(ctx), Xv.index))
        self.residual_ = self._fit_member(resid, self.seed_ + 1, X, target, rvalid)

    def components(self, X: pd.DataFrame) -> pd.DataFrame:
        """Columns ``base``, ``residual`` and ``final`` (= their sum) on ``X.index``."""
        X = self._checked_X(X)
        base, resid = _members([self.config_.base, self.config_.residual], "residual")
        b = self.base_.predict(base.view(X)).to_numpy(np.float64)
        r = self.residual_.predict(resid.view(X)).to_numpy(np.float64)
        return pd.DataFrame({"base": b, "residual": r, "final": b + r}, index=X.index)

    def _predict(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        return self.components(X)["final"].to_numpy()

    @classmethod
    def _member_specs(cls, config: Any) -> list[Any]:
        return [config.base, config.residual]

    def run_outputs(
        self, X: pd.DataFrame, y: pd.Series, rows: Mapping[str, pd.Index]
    ) -> dict[str, Any]:
        """``{"ensemble_components": frame}``: base, residual and final per row.

        The frame has columns ``split, timestamp, symbol, y_true, base, residual, final``;
        ``split`` ``"train"`` holds the base's out-of-fold rows as the residual model saw them,
        then the ``rows`` of each other split (each predicted from rows up to its last bar).
        """
        parts = []
        for part, idx in {"train": self.oof_.index, **rows}.items():
            end = idx.get_level_values("timestamp").max()
            comp = self.components(X[X.index.get_level_values("timestamp") <= end]).reindex(idx)
            if part == "train":  # the base's out-of-fold prediction, as the residual model saw it
                comp["base"] = self.oof_["base"].reindex(idx).to_numpy()
                comp["final"] = comp["base"] + comp["residual"]
            parts.append(
                pd.DataFrame(
                    {
                        "split": part,
                        "timestamp": idx.get_level_values("timestamp"),
                        "symbol": idx.get_level_values("symbol").astype(str),
                        "y_true": y.reindex(idx).to_numpy(np.float64),
                        **{c: comp[c].to_numpy(np.float64) for c in ("base", "residual", "final")},
                    }
                )
            )
        return {"ensemble_components": pd.concat(parts, ignore_index=True)}

    def _save_state(self, path: Path) -> dict[str, Any]:
        self._save_member(self.base_, path / "base")
        self._save_member(self.residual_, path / "residual")
        return {}

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        self.base_ = self._load_member(path / "base")
        self.residual_ = self._load_member(path / "residual")

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        tiny = {
            "n_estimators": 15,
            "learning_rate": 0.1,
            "num_leaves": 7,
            "min_child_samples": 10,
            "n_jobs": 1,
        }
        return {
            "base": {"name": "lightgbm", "params": tiny},
            "residual": {
                "name": "xgboost",
                "params": {"n_estimators": 10, "max_depth": 2, "n_jobs": 1},
            },
            "inner_folds": 2,
        }


@dataclass(frozen=True)
class FusionConfig:
    members: tuple[Any, ...] = ("lightgbm", "xgboost")  # member specs
    method: FusionMethod = "ridge"
    alpha: float = 1.0  # ridge penalty on unit-RMS-scaled member predictions
    intercept: bool = True
    sum_to_one: bool = False  # nnls only: a convex combination
    inner_folds: int = 3
    purge: int = 1
    stop_frac: float = 0.2

    def __post_init__(self) -> None:
        _check_oof(self)
        _members(self.members, "fusion")
        require(self.method in ("ols", "ridge", "nnls"), self, "method", "'ols', 'ridge' or 'nnls'")
        require(self.alpha >= 0, self, "alpha", "a float >= 0")
        require(
            not self.sum_to_one or self.method == "nnls",
            self,
            "sum_to_one",
            "False unless method is 'nnls'",
        )


class FusionForecaster(_Ensemble):
    """Learned linear combination of members' out-of-fold predictions (``kind: fusion``).

    The weights are fitted by :func:`fit_fusion` on :func:`walk_forward_predict`'s rows only;
    the members are then refitted on the whole training window.

    Attributes (after fit): ``weights_`` (pd.Series by member key), ``intercept_``,
    ``members_`` (fitted members), ``oof_``.
    """

    Config: ClassVar[type] = FusionConfig

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        c = self.config_
        members = _members(c.members, "fusion")
        oof = self._oof(members, X, y)
        keys = [m.key for m in members]
        ok = np.isfinite(oof[keys].to_numpy()).all(axis=1)
        w, b = fit_fusion(
            oof.loc[ok, keys].to_numpy(),
            oof.loc[ok, "y"].to_numpy(),
            c.method,
            alpha=c.alpha,
            intercept=c.intercept,
            sum_to_one=c.sum_to_one,
        )
        self.weights_ = pd.Series(w, index=keys, name="weight")
        self.intercept_ = b
        self.oof_ = oof
        self.members_ = [
            self._fit_member(m, self.seed_ + i, X, y, valid) for i, m in enumerate(members)
        ]
        logger.info(
            "fusion (%s): weights %s, intercept %.3g", c.method, dict(self.weights_.round(4)), b
        )

    def run_outputs(
        self, X: pd.DataFrame, y: pd.Series, rows: Mapping[str, pd.Index]
    ) -> dict[str, Any]:
        """``{"fusion_weights": {"weights": {member: w}, "intercept": b}}``."""
        return {
            "fusion_weights": {"weights": self.weights_.to_dict(), "intercept": self.intercept_}
        }

    def member_predictions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Each fitted member's predictions on ``X.index``, one column per member key."""
        members = _members(self.config_.members, "fusion")
        return pd.DataFrame(
            {
                m.key: f.predict(m.view(X)).to_numpy(np.float64)
                for m, f in zip(members, self.members_, strict=True)
            },
            index=X.index,
        )

    def _predict(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        P = self.member_predictions(X).to_numpy()
        return P @ self.weights_.to_numpy() + self.intercept_

    def _save_state(self, path: Path) -> dict[str, Any]:
        for i, f in enumerate(self.members_):
            self._save_member(f, path / f"member_{i}")
        return {
            "weights": self.weights_.tolist(),
            "keys": list(self.weights_.index),
            "intercept": self.intercept_,
        }

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        self.weights_ = pd.Series(state["weights"], index=state["keys"], name="weight")
        self.intercept_ = float(state["intercept"])
        self.members_ = [self._load_member(path / f"member_{i}") for i in range(len(state["keys"]))]

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {
            "members": (
                {
                    "name": "lightgbm",
                    "params": {
                        "n_estimators": 15,
                        "num_leaves": 7,
                        "min_child_samples": 10,
                        "n_jobs": 1,
                    },
                },
                {"name": "last_value", "params": {"column": "signal"}},
            ),
            "inner_folds": 2,
            "method": "nnls",
        }


@dataclass(frozen=True)
class WeightedConfig:
    members: tuple[Any, ...] = ("random_forest", "xgboost", "lstm")
    weights: tuple[float, ...] | None = None  # one per member; None: equal weights
    rank_average: bool = False  # blend per-timestamp cross-sectional ranks in [0, 1] instead

    def __post_init__(self) -> None:
        members = _members(self.members, "weighted")
        if self.weights is not None:
            require(
                len(self.weights) == len(members),
                self,
                "weights",
                f"one weight per member ({len(members)})",
            )
            require(
                all(np.isfinite(w) for w in self.weights) and sum(self.weights) != 0,
                self,
                "weights",
                "finite numbers with a non-zero sum",
            )


class WeightedForecaster(_Ensemble):
    """Fixed-weight blend of members (``kind: weighted``); nothing is learned beyond the members.

    Weights are normalised to sum to one. With ``rank_average`` each member's predictions are
    replaced by their cross-sectional percentile rank within each timestamp before blending.
    """

    Config: ClassVar[type] = WeightedConfig

    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        c = self.config_
        members = _members(c.members, "weighted")
        w = np.ones(len(members)) if c.weights is None else np.asarray(c.weights, np.float64)
        self.weights_ = pd.Series(w / w.sum(), index=[m.key for m in members], name="weight")
        self.members_ = [
            self._fit_member(m, self.seed_ + i, X, y, valid) for i, m in enumerate(members)
        ]

    def _predict(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        members = _members(self.config_.members, "weighted")
        P = pd.DataFrame(
            {
                m.key: f.predict(m.view(X)).to_numpy(np.float64)
                for m, f in zip(members, self.members_, strict=True)
            },
            index=X.index,
        )
        if self.config_.rank_average:
            P = P.groupby(level="timestamp", sort=False).rank(pct=True)
        return P.to_numpy() @ self.weights_.to_numpy()

    def _save_state(self, path: Path) -> dict[str, Any]:
        for i, f in enumerate(self.members_):
            self._save_member(f, path / f"member_{i}")
        return {"weights": self.weights_.tolist(), "keys": list(self.weights_.index)}

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        self.weights_ = pd.Series(state["weights"], index=state["keys"], name="weight")
        self.members_ = [self._load_member(path / f"member_{i}") for i in range(len(state["keys"]))]

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {
            "members": (
                {
                    "name": "random_forest",
                    "params": {"n_estimators": 5, "max_depth": 3, "n_jobs": 1},
                },
                {"name": "xgboost", "params": {"n_estimators": 10, "max_depth": 2, "n_jobs": 1}},
            ),
            "weights": (0.3, 0.7),
            "rank_average": True,
        }
