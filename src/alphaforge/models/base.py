"""BaseForecaster: the one estimator contract every alphaforge model follows.

- scikit-learn's contract: ``__init__`` only stores its arguments; ``fit(X, y, *, valid=None)``
  validates, resolves the seed, fits and returns ``self``; learned state ends in ``_``;
  ``predict`` before ``fit`` raises :class:`~alphaforge.errors.NotFittedError`.
- darts' template method: public ``fit``/``predict`` validate the panel, subclasses implement
  ``_fit``/``_predict`` on clean inputs only.
- Hyperparameters live on a frozen ``@dataclass`` (``cls.Config``, nanoGPT's ``GPTConfig``);
  ``from_params`` builds it from a YAML mapping and names the valid keys on a typo.
- Saving: a directory with ``meta.json`` plus native model files, written into a temp directory
  and renamed into place. Never pickle.

Subclass recipe::

    @dataclass(frozen=True)
    class MyConfig:
        alpha: float = 1.0  # ridge penalty

    class MyForecaster(BaseForecaster):
        Config = MyConfig
        capabilities = Capabilities(family="linear")

        def _fit(self, X, y, valid): self.coef_ = ...
        def _predict(self, X): return X.to_numpy() @ self.coef_
        def _save_state(self, path): return {"coef": self.coef_.tolist()}
        def _load_state(self, path, state): self.coef_ = np.asarray(state["coef"])
"""

from __future__ import annotations

import dataclasses
import json
import logging
import numbers
import os
import shutil
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, Union

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphaforge import __version__
from alphaforge.errors import ConfigError, DataError, NotFittedError
from alphaforge.labels import LabelSpec
from alphaforge.models.fold_matrix import shared, take_rows
from alphaforge.registry import MODELS, get_model, name_of
from alphaforge.utils.integrity import digest_tree, read_json, seal, verify_tree
from alphaforge.utils.io import atomic_write_text, make_temp_dir

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

INDEX_NAMES = ("timestamp", "symbol")
META_FILE = "meta.json"
FORMAT = "alphaforge.model"
FORMAT_VERSION = 1

Valid = tuple[pd.DataFrame, pd.Series]
"""A validation window ``(X_valid, y_valid)`` used for early stopping only."""


@dataclass(frozen=True)
class Capabilities:
    """What a forecaster can do; read by the CLI (``alphaforge models``) and the contract suite.

    Attributes:
        family: ``"tree"``, ``"baseline"``, ``"neural"``, ``"foundation"``, ...
        supports_valid: Uses the ``valid`` window passed to ``fit`` (others ignore it).
        early_stopping: Stops training on the ``valid`` window's loss or Rank IC.
        needs_sequence: Reads a lookback window of past rows per symbol (not one row at a time).
        cross_sectional: Prediction for a symbol reads other symbols at the same timestamp.
        multi_output: Predicts several horizons or targets at once.
        feature_importance: Exposes ``feature_importances_``.
        label_kinds: Label kinds the model is meant for (``"return"``, ``"volatility"``, ...).
        deterministic_cpu: The same seed gives bit-identical predictions on CPU.
        needs_context: ``predict`` reads rows before the ones it predicts (lookback windows,
            recursions): pass it the history up to the last predicted bar
            (:func:`predict_rows` does). ``None``: the same as ``needs_sequence``.
        checkpointable: Honours ``checkpoint_dir`` / ``resume`` set on the instance before
            ``fit`` (crash-safe, resumable training).
    """

    family: str
    supports_valid: bool = False
    early_stopping: bool = False
    needs_sequence: bool = False
    cross_sectional: bool = False
    multi_output: bool = False
    feature_importance: bool = False
    label_kinds: tuple[str, ...] = ("return", "volatility")
    deterministic_cpu: bool = True
    needs_context: bool | None = None
    checkpointable: bool = False

    def __post_init__(self) -> None:
        if self.needs_context is None:
            object.__setattr__(self, "needs_context", self.needs_sequence)


@dataclass(frozen=True)
class EmptyConfig:
    """Config of a model without hyperparameters."""


def require(ok: bool, config: object, field: str, expected: str) -> None:
    """Raise ``ConfigError`` naming ``config.field``, what was expected and what was got.

    Args:
        ok: The condition that must hold.
        config: The (dataclass) config being checked.
        field: Field name.
        expected: Human-readable expectation, e.g. ``"an int >= 1"``.

    Raises:
        ConfigError: if ``ok`` is false.
    """
    if not ok:
        got = getattr(config, field)
        raise ConfigError(f"{type(config).__name__}.{field} must be {expected}, got {got!r}")


class BaseForecaster:
    """Base of every forecaster: a scikit-learn style estimator over a (timestamp, symbol) panel.

    Args:
        config: The model's frozen config dataclass (``cls.Config``), a mapping of overrides of its
            defaults (validated in ``fit``), or ``None`` for the defaults.
        random_state: Seed resolved in ``fit``; ``None`` draws a fresh one from the OS.

    Attributes set by ``fit`` (learned state):
        config_: The resolved config dataclass.
        label_: The :class:`~alphaforge.labels.LabelSpec` passed to ``fit``.
        feature_names_in_: Column names of ``X`` seen in ``fit``; ``predict`` requires the
            same set.
        n_features_in_: ``len(feature_names_in_)``.
        seed_: The resolved integer seed.

    ``iteration_callback``, when set on the instance before ``fit``, is called by models with
    ``capabilities.early_stopping`` as ``callback(iteration, score)`` (lower is better: the valid
    loss, or ``-rank_ic`` with ``early_stopping_metric: rank_ic``) after each boosting round or
    epoch that was scored on the ``valid`` window; it may raise to stop the fit
    (``optuna.TrialPruned`` in :mod:`alphaforge.tuning`), and the exception propagates.

    ``checkpoint_dir`` and ``resume`` are read by models with ``capabilities.checkpointable``.
    """

    Config: ClassVar[type] = EmptyConfig
    iteration_callback: Callable[[int, float], None] | None = None
    # where/whether to checkpoint, not what to learn: set on the instance before fit
    # (`alphaforge run --resume`); None writes no checkpoints
    checkpoint_dir: str | os.PathLike[str] | None = None
    resume: bool = False
    capabilities: ClassVar[Capabilities] = Capabilities(family="base")
    # models fitted on features alone (GARCH on returns) keep rows whose label is NaN
    _keep_unlabelled_rows: ClassVar[bool] = False

    def __init__(self, config: Any = None, *, random_state: int | None = 0) -> None:
        self.config = config
        self.random_state = random_state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(config={self.config!r}, random_state={self.random_state!r})"

    # ------------------------------------------------------------------ config
    @classmethod
    def from_params(
        cls, params: Mapping[str, Any] | None = None, random_state: int | None = 0
    ) -> Self:
        """Build an unfitted forecaster from a mapping of config overrides (e.g. YAML ``params``).

        Args:
            params: Overrides of ``cls.Config`` defaults; ``None`` or ``{}`` for the defaults.
            random_state: Seed stored unchanged and resolved in ``fit``.

        Returns:
            An unfitted forecaster whose ``config`` is a validated ``cls.Config`` instance.

        Raises:
            ConfigError: unknown keys (the message lists the valid ones), wrong types, bad ranges.
        """
        return cls(cls._make_config(params), random_state=random_state)

    @classmethod
    def _make_config(cls, params: Mapping[str, Any] | None) -> Any:
        params = dict(params or {})
        names = [f.name for f in dataclasses.fields(cls.Config)]
        unknown = sorted(set(params) - set(names))
        if unknown:
            valid = ", ".join(names) if names else "(none)"
            raise ConfigError(
                f"{cls.__name__}: unknown parameter(s) {', '.join(map(repr, unknown))}; "
                f"valid: {valid}"
            )
        # YAML/JSON give lists where a frozen config wants tuples; numpy scalars become Python
        params = {
            k: tuple(v) if isinstance(v, list) else v.item() if isinstance(v, np.generic) else v
            for k, v in params.items()
        }
        _check_types(cls.Config, params)
        return cls.Config(**params)

    def _resolve_config(self) -> Any:
        if self.config is None:
            return self.Config()
        if isinstance(self.config, Mapping):
            return self._make_config(self.config)
        if isinstance(self.config, self.Config):
            _check_types(self.Config, dataclasses.asdict(self.config))
            return self.config
        raise ConfigError(
            f"{type(self).__name__}: config must be a {self.Config.__name__}, a mapping or None, "
            f"got {type(self.config).__name__}"
        )

    def get_params(self) -> dict[str, Any]:
        """The config as a plain mapping (scikit-learn's ``get_params``).

        Returns:
            Every config field with its value, accepted by :meth:`from_params`;
            ``random_state`` is not included.

        Raises:
            ConfigError: the stored config is invalid.
        """
        config = self.config_ if hasattr(self, "config_") else self._resolve_config()
        return dataclasses.asdict(config)

    def clone(self, **overrides: Any) -> Self:
        """An unfitted copy with the same config and seed (scikit-learn's ``clone``).

        Args:
            **overrides: Config fields to change in the copy (validated like
                :meth:`from_params`); ``random_state`` may be overridden too.

        Returns:
            A new, unfitted forecaster of the same class; fitted state is never copied.

        Raises:
            ConfigError: unknown or invalid overrides.
        """
        random_state = overrides.pop("random_state", self.random_state)
        return type(self).from_params({**self.get_params(), **overrides}, random_state=random_state)

    @classmethod
    def search_space(cls, trial: optuna.Trial) -> dict[str, Any]:
        """Optuna search space: suggest values through ``trial`` and return config overrides.

        Args:
            trial: An ``optuna.Trial`` (or ``FixedTrial``).

        Returns:
            A mapping accepted by :meth:`from_params`; empty when the model has nothing to tune.
        """
        return {}

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """Small, fast config overrides the contract suite (:mod:`alphaforge.testing`) fits with."""
        return {}

    # ------------------------------------------------------------------ fit / predict
    def fit(
        self,
        X: pd.DataFrame,
        y: pd.Series,
        *,
        valid: Valid | None = None,
        label: LabelSpec | None = None,
    ) -> Self:
        """Fit on a training window; any previous fit is forgotten.

        Args:
            X: Features, shape ``(n_rows, F)``, MultiIndex ``(timestamp, symbol)``, float columns;
                NaN allowed (warm-up), inf not.
            y: Labels on exactly ``X.index``; rows with NaN labels are dropped before ``_fit``.
            valid: Optional ``(X_valid, y_valid)`` window with the same columns, used only for
                early stopping by models whose ``capabilities.supports_valid`` is true.
            label: What ``y`` is (kind, horizon, price); ``None``: a one-bar forward return.
                Models that forecast h bars ahead or pick a head by label kind read it.

        Returns:
            ``self``, fitted.

        Raises:
            DataError: misaligned or empty inputs, non-numeric columns, inf values, no labels.
            ConfigError: invalid config.
        """
        config = self._resolve_config()
        if label is not None and not isinstance(label, LabelSpec):
            raise ConfigError(f"label must be a LabelSpec, got {type(label).__name__}")
        _check_panel(X, "X")
        _check_labels(y, X, "y")
        if valid is not None:
            valid = self._check_valid(valid, X)
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)  # fitting twice == fitting once
        self.config_ = config
        self.label_ = label if label is not None else LabelSpec()
        self.seed_ = _resolve_seed(self.random_state)
        self.feature_names_in_ = [str(c) for c in X.columns]
        self.n_features_in_ = len(self.feature_names_in_)
        if not self._keep_unlabelled_rows:
            X, y = _labelled(X, y)
        if valid is not None and not self.capabilities.supports_valid:
            logger.debug("%s ignores the validation window", type(self).__name__)
        logger.info("fitting %s on %d rows x %d features", type(self).__name__, *X.shape)
        self._fit(X, y, valid)
        return self

    def predict(self, X: pd.DataFrame) -> pd.Series:
        """Predict one value per row of ``X``.

        Args:
            X: Features with the columns seen in ``fit`` (any order), MultiIndex
                ``(timestamp, symbol)``. Row ``(t, s)`` is predicted from rows at or before ``t``
                only (checked by :func:`alphaforge.testing.check_forecaster`).

        Returns:
            Float series named ``"y_pred"`` on ``X.index``.

        Raises:
            NotFittedError: before ``fit``.
            DataError: missing or extra columns, inf values, bad index.
        """
        X = self._checked_X(X)
        values = np.asarray(self._predict(X), dtype=np.float64)
        if values.shape != (len(X),):  # a model bug, not a user error: say which model
            raise RuntimeError(
                f"{type(self).__name__}._predict returned shape {values.shape}, "
                f"expected ({len(X)},)"
            )
        return pd.Series(values, index=X.index, name="y_pred")

    @property
    def feature_importances_(self) -> pd.Series:
        """Importance per feature (total split gain for trees), indexed by feature name.

        Raises:
            AttributeError: the model has no notion of feature importance.
            NotFittedError: before ``fit``.
        """
        if not self.capabilities.feature_importance:
            raise AttributeError(f"{type(self).__name__} has no feature importances")
        self._check_is_fitted()
        values = np.asarray(self._feature_importances(), dtype=np.float64)
        return pd.Series(values, index=self.feature_names_in_, name="importance")

    # orchestration hooks ------------------------------------------------------------------
    def run_outputs(
        self, X: pd.DataFrame, y: pd.Series, rows: Mapping[str, pd.Index]
    ) -> dict[str, Any]:
        """Extra per-fold results a run records for this fitted model (ensembles override).

        Args:
            X, y: The fold's features and labels (rows after a split's last bar may be
                present: an implementation reads only rows up to the bars it describes).
            rows: Index of the rows predicted per split (``"valid"``, ``"test"``).

        Returns:
            ``{output: value}``; the run directory's artifact module (:mod:`alphaforge.artifacts`)
            says which outputs it records. Empty for most models.
        """
        return {}

    @classmethod
    def member_keys(cls, params: Mapping[str, Any]) -> list[str]:
        """Display names of the models an ensemble configured by ``params`` combines.

        Returns:
            An empty list for a model that is not an ensemble.
        """
        return []

    # hooks ------------------------------------------------------------------------------
    def _fit(self, X: pd.DataFrame, y: pd.Series, valid: Valid | None) -> None:
        raise NotImplementedError

    def _predict(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        raise NotImplementedError

    def _feature_importances(self) -> npt.NDArray[np.float64]:
        raise NotImplementedError

    def _save_state(self, path: Path) -> dict[str, Any]:
        """Write native model files into ``path``; return small JSON-able learned state."""
        return {}

    def _load_state(self, path: Path, state: dict[str, Any]) -> None:
        """Restore learned state from ``_save_state``'s files and returned mapping."""

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save a fitted model as a directory: ``meta.json`` plus the model's native files.

        The directory is written next to ``path`` under a temporary name and renamed into place,
        so a crash leaves the old model or the new one, never a mix (and the next save beside it
        removes what a killed save left). An existing ``path`` is replaced only if it is empty or
        itself a saved model. Files and folders get the usual ``0o666``/``0o777 & ~umask``.

        Args:
            path: Destination directory.

        Returns:
            ``path`` as a ``Path``.

        Raises:
            NotFittedError: before ``fit``.
            DataError: ``path`` exists and is not a model directory.
        """
        self._check_is_fitted()
        path = Path(path)
        if path.exists() and not _is_replaceable(path):
            raise DataError(f"refusing to overwrite {path}: not an empty or model directory")
        tmp = make_temp_dir(path)  # 0o777 & ~umask; removes what killed saves left beside it
        try:
            state = self._save_state(tmp)
            meta = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "model": name_of(type(self)),
                "class": _target(type(self)),
                "alphaforge_version": __version__,
                "config": dataclasses.asdict(self.config_),
                "random_state": None if self.random_state is None else int(self.random_state),
                "seed": self.seed_,
                "feature_names": self.feature_names_in_,
                "label": dataclasses.asdict(self.label_),
                "state": state,
                "files": digest_tree(tmp),  # the native files, checked by load
            }
            atomic_write_text(tmp / META_FILE, json.dumps(seal(meta), indent=1) + "\n")
            _replace_dir(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        logger.info("saved %s to %s", type(self).__name__, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BaseForecaster:
        """Load a model saved by :meth:`save`, without unpickling anything.

        ``BaseForecaster.load`` resolves the class from the registry name in ``meta.json``;
        ``SomeForecaster.load`` also loads unregistered classes saved by that exact class.

        Args:
            path: Directory written by :meth:`save`.

        Returns:
            A fitted forecaster whose predictions equal the saved one's.

        Raises:
            DataError: missing or malformed ``meta.json``, a model of another class, or a file
                whose size or SHA-256 differs from what ``meta.json`` recorded (truncated or
                altered; ``meta.json`` itself carries a seal).
        """
        path = Path(path)
        if not (path / META_FILE).is_file():
            raise DataError(f"not a saved model: no {META_FILE}", path=str(path))
        meta = read_json(path / META_FILE, what="saved model's metadata")
        if not isinstance(meta, dict):
            raise DataError(f"saved model's {META_FILE} is not a JSON object", path=str(path))
        if meta.get("format") != FORMAT or meta.get("format_version", 0) > FORMAT_VERSION:
            raise DataError(
                f"not an alphaforge model directory (format {meta.get('format')!r}, "
                f"version {meta.get('format_version')!r}; expected {FORMAT!r} <= {FORMAT_VERSION})",
                path=str(path),
            )
        verify_tree(path, meta.get("files", {}), what="saved model")  # none before checksums
        klass = _resolve_saved_class(cls, meta, path)
        model = klass(klass._make_config(meta["config"]), random_state=meta["random_state"])
        model.config_ = model.config
        model.seed_ = meta["seed"]
        model.label_ = LabelSpec(**meta.get("label", {}))
        model.feature_names_in_ = list(meta["feature_names"])
        model.n_features_in_ = len(model.feature_names_in_)
        model._load_state(path, meta["state"])
        return model

    # ------------------------------------------------------------------ helpers
    def _check_is_fitted(self) -> None:
        if not hasattr(self, "feature_names_in_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit() first.")

    def _checked_X(self, X: Any) -> pd.DataFrame:
        """The preamble of every public method that reads features after ``fit``.

        Returns:
            ``X`` with its columns in the order seen in ``fit``.

        Raises:
            NotFittedError: before ``fit``.
            DataError: not a (timestamp, symbol) frame of finite/NaN floats, or other columns.
        """
        self._check_is_fitted()
        # a run's fold frames are checked once, by whichever model predicts them first
        shared(X, "checked panel", lambda: _check_panel(X, "X"))
        return self._align_columns(X, "X")

    def _align_columns(self, X: pd.DataFrame, what: str) -> pd.DataFrame:
        columns = [str(c) for c in X.columns]
        if columns == self.feature_names_in_:
            return X
        missing = [c for c in self.feature_names_in_ if c not in set(columns)]
        extra = [c for c in columns if c not in set(self.feature_names_in_)]
        if missing or extra:
            raise DataError(
                f"{what} columns differ from those seen in fit: missing {missing[:10]}, "
                f"unexpected {extra[:10]} (expected {self.n_features_in_} columns)"
            )
        return X.set_axis(columns, axis=1)[self.feature_names_in_]  # same set, other order

    def _check_valid(self, valid: Any, X: pd.DataFrame) -> Valid:
        if not (isinstance(valid, tuple) and len(valid) == 2):
            raise DataError(f"valid must be a tuple (X_valid, y_valid), got {type(valid).__name__}")
        X_valid, y_valid = valid
        _check_panel(X_valid, "X_valid")
        _check_labels(y_valid, X_valid, "y_valid")
        if [str(c) for c in X_valid.columns] != [str(c) for c in X.columns]:
            raise DataError("X_valid must have the same columns, in the same order, as X")
        X_valid, y_valid = _labelled(X_valid, y_valid)
        return X_valid, y_valid


def predict_rows(
    model: BaseForecaster, X: pd.DataFrame, rows: pd.Index | npt.NDArray[np.bool_]
) -> pd.Series:
    """``model``'s predictions for ``rows`` of ``X``.

    Stateful models (sequence windows, GARCH recursion) read every row of ``X`` up to the last
    timestamp of ``rows`` as context; rows after it are never passed in. Others see ``rows`` only.

    Args:
        model: A fitted forecaster.
        X: Features.
        rows: Index of the rows to predict (predictions in its order), or a boolean mask of
            ``X``'s rows (predictions in ``X``'s order; inside a
            :func:`~alphaforge.models.fold_matrix.shared_fold` block over ``X`` every model gets
            the same selected frame and its float32 matrix is built once).
    """
    stamps = X.index.get_level_values("timestamp")
    if isinstance(rows, pd.Index):
        if model.capabilities.needs_context:
            end = rows.get_level_values("timestamp").max()
            return model.predict(X[stamps <= end]).reindex(rows)
        return model.predict(X.loc[rows])
    rows = np.asarray(rows, dtype=bool)
    if model.capabilities.needs_context:
        ctx = take_rows(X, stamps <= stamps[rows].max())
        return model.predict(ctx).reindex(X.index[rows])
    return model.predict(take_rows(X, rows))


# ---------------------------------------------------------------------- validation helpers
def features_array(X: pd.DataFrame) -> npt.NDArray[np.float64]:
    """``X`` as a C-contiguous float64 array ``(n_rows, F)``; NaN kept."""
    return np.ascontiguousarray(X.to_numpy(dtype=np.float64, na_value=np.nan))


def _check_panel(X: Any, what: str) -> None:
    if not isinstance(X, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(X).__name__}")
    index = X.index
    if not isinstance(index, pd.MultiIndex) or tuple(index.names) != INDEX_NAMES:
        raise DataError(
            f"{what} must be indexed by a MultiIndex {INDEX_NAMES}, got index names "
            f"{list(index.names)}"
        )
    if len(X) == 0 or X.shape[1] == 0:
        raise DataError(f"{what} is empty: shape {X.shape}")
    if index.has_duplicates:
        first = index[index.duplicated()][0]
        raise DataError(f"{what} has duplicate index entries", symbol=first[1], timestamp=first[0])
    bad = [c for c, dt in X.dtypes.items() if not (pd.api.types.is_numeric_dtype(dt))]
    if bad:
        raise DataError(f"{what} has non-numeric columns {bad[:10]}; expected float features")
    if any(not isinstance(c, str) for c in X.columns):
        raise DataError(f"{what} column names must be strings, got {list(X.columns)[:10]}")
    if X.columns.has_duplicates:
        dupes = sorted(set(X.columns[X.columns.duplicated()]))
        raise DataError(f"{what} has duplicate column names {dupes[:10]}")
    for column in X.columns:  # column by column: no (n_rows, F) float64 copy of a big panel
        values = X[column].to_numpy(dtype=np.float64, na_value=np.nan)
        inf = np.isinf(values)
        if inf.any():
            ts, sym = index[int(np.argmax(inf))]
            raise DataError(
                f"{what} column {column!r} is infinite; expected finite or NaN",
                symbol=sym,
                timestamp=ts,
            )


def _check_labels(y: Any, X: pd.DataFrame, what: str) -> None:
    if not isinstance(y, pd.Series):
        raise DataError(f"{what} must be a pandas Series, got {type(y).__name__}")
    if not y.index.equals(X.index):
        raise DataError(f"{what} must be indexed exactly like X (same rows, same order)")
    if not pd.api.types.is_numeric_dtype(y.dtype):
        raise DataError(f"{what} must be numeric, got dtype {y.dtype}")
    values = y.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isinf(values).any():
        ts, sym = y.index[np.isinf(values)][0]
        raise DataError(f"{what} is infinite; expected finite or NaN", symbol=sym, timestamp=ts)
    if np.isnan(values).all():
        raise DataError(f"{what} has no labelled rows (all {len(values)} labels are NaN)")


def _labelled(X: pd.DataFrame, y: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
    mask = y.notna().to_numpy()
    if mask.all():
        return X, y
    return X[mask], y[mask]


def _resolve_seed(random_state: int | None) -> int:
    if random_state is None:
        return int(np.random.SeedSequence().entropy % (2**31 - 1))
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
        raise ConfigError(f"random_state must be an int >= 0 or None, got {random_state!r}")
    if random_state < 0:
        raise ConfigError(f"random_state must be an int >= 0 or None, got {random_state!r}")
    return int(random_state) % (2**31 - 1)  # native libraries take a signed 32-bit seed


def _check_types(config_cls: type, params: Mapping[str, Any]) -> None:
    try:
        hints = typing.get_type_hints(config_cls)
    except (NameError, TypeError):  # annotations that cannot be resolved are not checked
        hints = {}
    for name, value in params.items():
        hint = hints.get(name, Any)
        if not _matches(value, hint):
            shown = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
            raise ConfigError(
                f"{config_cls.__name__}.{name} must be {shown}, got {value!r} "
                f"({type(value).__name__})"
            )


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool | np.bool_)
    if isinstance(value, bool | np.bool_):
        return False  # True is an int in Python, never a number here
    if hint is int:
        return isinstance(value, numbers.Integral)
    if hint is float:
        return isinstance(value, numbers.Real)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple or hint is tuple:
        return isinstance(value, tuple)
    return True


# ---------------------------------------------------------------------- save helpers
def _target(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _resolve_saved_class(cls: type[BaseForecaster], meta: dict, path: Path) -> type:
    if meta.get("class") == _target(cls):
        return cls
    name = meta.get("model")
    if name not in MODELS:
        raise DataError(
            f"model class {meta.get('class')!r} is not in the registry; load it with that "
            f"class's own .load()",
            path=str(path),
        )
    klass = get_model(name)
    if not issubclass(klass, cls):
        raise DataError(f"holds a {name!r} model, not a {cls.__name__}", path=str(path))
    return klass


def _is_replaceable(path: Path) -> bool:
    return path.is_dir() and ((path / META_FILE).is_file() or not any(path.iterdir()))


def _replace_dir(tmp: Path, path: Path) -> None:
    # rename() cannot replace a non-empty directory: move the old one aside first
    if not path.exists():
        os.replace(tmp, path)
        return
    old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
