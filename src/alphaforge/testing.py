"""Public contract checks every registered model must pass (scikit-learn's ``estimator_checks``).

``tests/models/test_contract.py`` runs :func:`check_forecaster` over every entry of
:data:`alphaforge.registry.MODELS`, so a new model is under the whole contract as soon as it has a
registry line. Users can run the same checks on their own forecasters::

    from alphaforge.testing import check_forecaster
    check_forecaster(lambda: MyForecaster({"alpha": 0.5}, random_state=0))

Sections: synthetic data (:func:`tiny_problem`), perturbation helpers (:func:`scramble_future`),
forecaster checks (:data:`FORECASTER_CHECKS`, :func:`check_forecaster`), and the look-ahead
battery for features and labels (:func:`leakage_panel`, :func:`perturb_after`,
:func:`check_no_lookahead`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from alphaforge.errors import ConfigError, DataError, LeakageError, NotFittedError
from alphaforge.labels import LabelSpec
from alphaforge.models.base import BaseForecaster
from alphaforge.registry import get_model, name_of

__all__ = [
    "FORECASTER_CHECKS",
    "check_forecaster",
    "check_no_lookahead",
    "leakage_panel",
    "perturb_after",
    "scramble_future",
    "tiny_problem",
]

ModelSpec = str | type[BaseForecaster] | BaseForecaster | Callable[[], BaseForecaster]


# ============================================================================ synthetic data
def tiny_problem(
    n_symbols: int = 6,
    n_bars: int = 160,
    n_features: int = 5,
    seed: int = 0,
    *,
    label: Literal["return", "volatility"] = "return",
    horizon: int = 1,
) -> tuple[pd.DataFrame, pd.Series]:
    """A small feature/label panel with a learnable signal, in plain numpy.

    Returns follow ``r_{t+1} = sigma_{t+1} * (0.3 * signal_t + eps)`` with GARCH(1,1)-like
    ``sigma``, so the return label is predictable from ``signal`` and the volatility label from
    ``ret_1``/``rv_20``. Features look only backward and have warm-up NaN: ``signal`` (observed
    AR(1) state), ``ret_1`` (return of bar t, NaN on the first bar), ``rv_20`` (root mean square of
    the last 20 returns), ``ret_5`` (sum of the last 5), then ``noise_0, noise_1, ...``.

    Args:
        n_symbols: Number of symbols N (``S00``, ``S01``, ...).
        n_bars: Number of business-day timestamps T.
        n_features: Number of columns, >= 3 (always ``signal``, ``ret_1``, ``rv_20`` first).
        seed: Seed of the only random generator used.
        label: ``"return"``: sum of the next ``horizon`` returns; ``"volatility"``: root of the
            sum of their squares.
        horizon: Label horizon h in bars; the last h bars of every symbol have NaN labels.

    Returns:
        ``(X, y)``: X of shape ``(T * N, n_features)`` and y named ``"y"``, both on a
        ``(timestamp, symbol)`` MultiIndex sorted by timestamp then symbol.

    Raises:
        ValueError: ``n_features < 3`` or ``n_bars <= horizon + 20``.
    """
    if n_features < 3 or n_bars <= horizon + 20:
        raise ValueError(
            f"need n_features >= 3 and n_bars > horizon + 20, got {n_features}, {n_bars}"
        )
    rng = np.random.default_rng(seed)
    T, N = n_bars, n_symbols
    signal = np.zeros((T, N))  # (T, N) AR(1) state, unit variance
    r = np.zeros((T, N))  # (T, N) return of bar t
    s2 = np.full(N, 1e-4)  # variance of the next return
    for t in range(1, T):  # GARCH(1,1): omega = 2e-6, alpha = 0.08, beta = 0.9 (daily-like)
        signal[t] = 0.9 * signal[t - 1] + np.sqrt(1 - 0.81) * rng.standard_normal(N)
        r[t] = np.sqrt(s2) * (0.3 * signal[t - 1] + rng.standard_normal(N))
        s2 = 2e-6 + 0.08 * r[t] ** 2 + 0.9 * s2
    ret_1 = r.copy()
    ret_1[0] = np.nan  # no previous close
    csum, csq = (
        np.nancumsum(np.vstack([np.zeros(N), ret_1]), 0),
        np.cumsum(np.vstack([np.zeros(N), np.nan_to_num(ret_1) ** 2]), 0),
    )
    ret_5 = csum[5:] - csum[:-5]  # (T - 4, N) sum of bars t-4..t
    rv_20 = np.sqrt((csq[20:] - csq[:-20]) / 20)
    columns = {
        "signal": signal,
        "ret_1": ret_1,
        "rv_20": np.vstack([np.full((19, N), np.nan), rv_20]),
        "ret_5": np.vstack([np.full((5, N), np.nan), ret_5[1:]]),
    }
    for k in range(max(0, n_features - len(columns))):
        columns[f"noise_{k}"] = rng.standard_normal((T, N))
    names = list(columns)[:n_features]
    # labels: bars t+1 .. t+h
    future = np.vstack([r[1:], np.full((1, N), np.nan)])  # (T, N) r_{t+1}
    stacked = np.stack([np.roll(future, -k, axis=0) for k in range(horizon)])  # (h, T, N)
    stacked[:, T - horizon :] = np.nan
    y = stacked.sum(0) if label == "return" else np.sqrt((stacked**2).sum(0))
    index = pd.MultiIndex.from_product(
        [pd.date_range("2020-01-01", periods=T, freq="B"), [f"S{i:02d}" for i in range(N)]],
        names=["timestamp", "symbol"],
    )
    X = pd.DataFrame({c: columns[c].ravel() for c in names}, index=index)  # (T * N, F)
    return X, pd.Series(y.ravel(), index=index, name="y")


# ============================================================================ perturbations
def scramble_future(frame: pd.DataFrame, t: Any, *, seed: int = 0) -> pd.DataFrame:
    """Copy of ``frame`` whose rows after timestamp ``t`` are shuffled and noised.

    Rows with timestamp ``> t`` get the values of a random permutation of those rows plus
    Gaussian noise (half of each column's standard deviation); the index and everything at or
    before ``t`` are unchanged. Anything computed for timestamps ``<= t`` that changes on this
    copy looked into the future.

    Args:
        frame: Numeric frame on a ``(timestamp, symbol)`` MultiIndex.
        t: Cut timestamp.
        seed: Seed of the permutation and the noise.

    Returns:
        The scrambled copy (``frame`` itself is not modified).
    """
    rng = np.random.default_rng(seed)
    out = frame.copy()
    after = np.flatnonzero(frame.index.get_level_values("timestamp") > t)
    values = frame.to_numpy(dtype=np.float64, na_value=np.nan)[after]
    values = values[rng.permutation(len(after))]
    scale = np.nan_to_num(np.nanstd(values, axis=0), nan=1.0) + 1e-12
    out.iloc[after] = values + 0.5 * scale * rng.standard_normal(values.shape)
    return out


# ============================================================================ forecaster checks
@dataclass
class _Case:
    """Everything one run of the forecaster checks shares: data, windows and a factory."""

    name: str
    factory: Callable[[], BaseForecaster]
    X: pd.DataFrame
    y: pd.Series
    train: np.ndarray  # boolean row masks
    valid: np.ndarray
    cut: Any  # scramble after this timestamp; after train and valid
    label: LabelSpec | None = None  # what y is, passed to fit

    def fit(self, model: BaseForecaster | None = None) -> BaseForecaster:
        model = model if model is not None else self.factory()
        t, v = self.train, self.valid
        return model.fit(self.X[t], self.y[t], valid=(self.X[v], self.y[v]), label=self.label)

    def fail(self, check: str, message: str) -> None:
        raise AssertionError(f"check_forecaster[{self.name}] {check}: {message}")

    def same(self, check: str, a: pd.Series, b: pd.Series, what: str) -> None:
        if not np.array_equal(a.to_numpy(), b.to_numpy(), equal_nan=True):
            gap = np.abs(a.to_numpy(np.float64) - b.to_numpy(np.float64))
            diff = float(np.max(np.where(np.isnan(gap), np.inf, gap)))
            self.fail(check, f"{what}: predictions differ (max abs diff {diff:.3g})")


def _check_not_fitted(case: _Case) -> None:
    model = case.factory()
    with tempfile.TemporaryDirectory() as tmp:
        for action, call in (
            ("predict", lambda: model.predict(case.X)),
            ("save", lambda: model.save(Path(tmp) / "model")),
        ):
            _expect_not_fitted(case, action, call)


def _expect_not_fitted(case: _Case, action: str, call: Callable[[], Any]) -> None:
    try:
        call()
    except NotFittedError:
        return
    except Exception as exc:  # noqa: BLE001 - any other outcome is the failure we report
        case.fail("not_fitted", f"{action} before fit raised {type(exc).__name__}: {exc}")
    case.fail("not_fitted", f"{action} before fit did not raise NotFittedError")


def _check_fit_contract(case: _Case) -> None:
    model = case.factory()
    before = {k: v for k, v in vars(model).items() if not k.endswith("_")}
    t, v = case.train, case.valid
    inputs = [case.X[t], case.y[t], case.X[v], case.y[v], case.X]  # the very objects passed
    copies = [frame.copy(deep=True) for frame in inputs]
    fitted = model.fit(inputs[0], inputs[1], valid=(inputs[2], inputs[3]), label=case.label)
    if fitted is not model:
        case.fail("fit_returns_self", f"fit returned {type(fitted).__name__}, not self")
    if list(model.feature_names_in_) != [str(c) for c in case.X.columns]:
        case.fail("feature_names_in", f"feature_names_in_ is {model.feature_names_in_!r:.80}")
    after = vars(model)
    for key, value in before.items():
        if after.get(key) is not value:
            case.fail("init_params_unchanged", f"fit replaced constructor argument {key!r}")
    new = [k for k in after if k not in before and not k.startswith("_") and not k.endswith("_")]
    if new:
        case.fail("learned_state_naming", f"fit set attributes without a trailing '_': {new}")
    pred = model.predict(inputs[4])
    for given, kept in zip(inputs, copies, strict=True):
        try:
            assert_equal = (
                pd.testing.assert_frame_equal
                if isinstance(kept, pd.DataFrame)
                else pd.testing.assert_series_equal
            )
            assert_equal(given, kept, check_exact=True)
        except AssertionError as exc:
            case.fail("inputs_unchanged", f"fit or predict modified its inputs: {exc}")
    if not isinstance(pred, pd.Series) or pred.name != "y_pred":
        case.fail("predict_output", f"expected a Series named 'y_pred', got {pred!r:.80}")
    if not pred.index.equals(case.X.index):
        case.fail("predict_output", "predictions are not on X's index")
    if pred.dtype != np.float64 or pred.isna().all():
        case.fail("predict_output", f"expected float64 predictions, not all NaN; got {pred.dtype}")
    shuffled = model.predict(case.X[case.X.columns[::-1]])
    case.same("column_order", pred, shuffled, "predict on reordered columns")
    try:
        model.predict(case.X.iloc[:, 1:])
    except DataError:
        pass
    else:
        case.fail("column_check", "predict accepted X with a missing column")
    if model.capabilities.feature_importance:
        imp = model.feature_importances_
        if list(imp.index) != list(case.X.columns) or not np.isfinite(imp.to_numpy()).all():
            case.fail("feature_importances", f"expected finite values per feature, got {imp}")


def _check_deterministic(case: _Case) -> None:
    model = case.fit()
    first = model.predict(case.X)
    case.same("refit", first, case.fit(model).predict(case.X), "fit twice on one instance")
    if model.capabilities.deterministic_cpu:
        case.same("same_seed", first, case.fit().predict(case.X), "two fresh fits, same seed")


def _check_save_load(case: _Case) -> None:
    model = case.fit()
    pred = model.predict(case.X)
    with tempfile.TemporaryDirectory() as tmp:
        path = model.save(Path(tmp) / "model")
        _check_no_pickle(case, path)
        loaded = type(model).load(path)
        again = model.save(path)  # overwriting a saved model is allowed
        loaded_again = BaseForecaster.load(again) if _registered(model) else loaded
    if type(loaded) is not type(model):
        case.fail("save_load", f"load returned {type(loaded).__name__}")
    case.same("save_load", pred, loaded.predict(case.X), "save -> load -> predict")
    case.same("save_load", pred, loaded_again.predict(case.X), "save over -> load -> predict")
    if model.capabilities.feature_importance:
        case.same(
            "save_load",
            model.feature_importances_,
            loaded.feature_importances_,
            "feature importances after load",
        )


def _check_future_perturbation(case: _Case) -> None:
    model = case.fit()  # trained on timestamps before the cut
    stamps = case.X.index.get_level_values("timestamp")
    past = np.asarray(stamps <= case.cut)
    pred = model.predict(case.X)[past]
    scrambled = model.predict(scramble_future(case.X, case.cut, seed=1))[past]
    case.same(
        "future_perturbation",
        pred,
        scrambled,
        f"rows at or before {case.cut} changed when rows after it were scrambled",
    )
    truncated = model.predict(case.X[past])
    case.same(
        "future_perturbation",
        pred,
        truncated,
        f"rows at or before {case.cut} changed when rows after it were dropped",
    )


def _check_params_and_clone(case: _Case) -> None:
    model = case.factory()
    params = model.get_params()
    again = type(model).from_params(params, random_state=model.random_state)
    if again.get_params() != params:
        case.fail("get_params", "from_params(get_params()) does not give the same params")
    twin = model.clone()
    if type(twin) is not type(model) or twin.get_params() != params or twin is model:
        case.fail("clone", "clone() did not give a new model of the same class and params")
    _expect_not_fitted(case, "predict of a clone", lambda: twin.predict(case.X))


def _check_unknown_param(case: _Case) -> None:
    cls = type(case.factory())
    try:
        cls.from_params({"__no_such_param__": 1})
    except ConfigError as exc:
        if "__no_such_param__" not in str(exc):
            case.fail("unknown_param", f"ConfigError does not name the unknown key: {exc}")
    else:
        case.fail("unknown_param", "from_params accepted an unknown key")


FORECASTER_CHECKS: tuple[Callable[[_Case], None], ...] = (
    _check_not_fitted,
    _check_fit_contract,
    _check_deterministic,
    _check_save_load,
    _check_future_perturbation,
    _check_params_and_clone,
    _check_unknown_param,
)
"""The checks :func:`check_forecaster` runs, in order."""


def check_forecaster(
    model: ModelSpec, X: pd.DataFrame | None = None, y: pd.Series | None = None
) -> None:
    """Run the forecaster contract on a model; raise ``AssertionError`` naming the broken rule.

    Checks: predict/save before fit raise ``NotFittedError``; ``fit`` returns ``self``, keeps
    constructor arguments and names learned state with a trailing ``_``; X and y are not
    modified; predictions are a float Series ``"y_pred"`` on X's index, independent of column
    order; a missing column is a ``DataError``; fitting twice, and two fresh fits with the same
    seed, give identical predictions (CPU); save -> load -> predict is identical and writes no
    pickle; **future perturbation**: with training on the first 60% of timestamps (next 20% as
    ``valid``), predictions at or before a cut at 85% do not change when every row after the cut
    is scrambled or dropped; ``get_params``/``clone`` round-trip the config and a clone is
    unfitted; ``from_params`` rejects unknown keys.

    Args:
        model: A registry name, a ``BaseForecaster`` subclass (both built with
            ``from_params(cls.test_params(), random_state=0)``), an unfitted instance (cloned
            from its config and seed), or a zero-argument factory returning fresh instances.
        X: Feature panel; default :func:`tiny_problem` with the model's first label kind
            (``"return"`` when supported).
        y: Labels on ``X.index``; given together with ``X``.

    Raises:
        AssertionError: the first broken rule, as ``check_forecaster[<model>] <check>: <what>``.
    """
    name, factory = _factory(model)
    if (X is None) != (y is None):
        raise ValueError("pass X and y together, or neither")
    if X is None or y is None:
        kinds = factory().capabilities.label_kinds
        kind = "return" if "return" in kinds else kinds[0]
        X, y = tiny_problem(label=kind)  # type: ignore[arg-type]
    stamps = X.index.get_level_values("timestamp")
    unique = np.unique(stamps)
    if len(unique) < 10:
        raise ValueError(f"need at least 10 timestamps, got {len(unique)}")
    q60, q80, q85 = (unique[int(q * (len(unique) - 1))] for q in (0.6, 0.8, 0.85))
    case = _Case(
        name,
        factory,
        X,
        y,
        train=np.asarray(stamps <= q60),
        valid=np.asarray((stamps > q60) & (stamps <= q80)),
        cut=q85,
    )
    kinds = factory().capabilities.label_kinds
    if "return" not in kinds and "volatility" in kinds:
        case.label = LabelSpec("realized_vol", 1)
    for check in FORECASTER_CHECKS:
        check(case)


def _factory(model: ModelSpec) -> tuple[str, Callable[[], BaseForecaster]]:
    if isinstance(model, str):
        cls = get_model(model)
        return model, lambda: cls.from_params(cls.test_params(), random_state=0)
    if isinstance(model, type) and issubclass(model, BaseForecaster):
        return model.__name__, lambda: model.from_params(model.test_params(), random_state=0)
    if isinstance(model, BaseForecaster):
        proto = model
        return type(proto).__name__, proto.clone
    if callable(model):
        return getattr(model, "__name__", "factory"), model
    raise TypeError(f"expected a registry name, class, instance or factory, got {model!r}")


def _registered(model: BaseForecaster) -> bool:
    return name_of(type(model)) is not None


def _check_no_pickle(case: _Case, path: Path) -> None:
    for file in path.rglob("*"):
        if not file.is_file():
            continue
        head = file.read_bytes()[:2]
        if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            case.fail("no_pickle", f"{file.name} looks like a pickle")
        if file.suffix in (".npz", ".npy"):
            try:
                loaded = np.load(file, allow_pickle=False)
                if isinstance(loaded, np.lib.npyio.NpzFile):
                    with loaded:
                        _ = [loaded[k] for k in loaded.files]  # object arrays raise here
            except ValueError as exc:
                case.fail("no_pickle", f"{file.name} needs allow_pickle: {exc}")


# ---------------------------------------------------------------------------------------------
# Look-ahead battery for features and labels (future perturbation at every cut point)
# ---------------------------------------------------------------------------------------------


def leakage_panel(n_bars: int = 160, seed: int = 0) -> pd.DataFrame:
    """Small awkward panel for look-ahead checks: 4 symbols with gaps, halts and a split.

    * ``AAA``: plain random walk; ``BBB`` starts 20 bars late and misses 10 random bars (gaps);
    * ``CCC``: a trading halt (flat prices, zero volume, no NaN) for 5 bars mid-sample;
    * ``DDD``: a 2:1 split (unadjusted prices halve, volume doubles) in the middle.

    Args:
        n_bars: Business days on the grid.
        seed: RNG seed.

    Returns:
        Panel indexed by (timestamp, symbol), sorted, float64 OHLCV.
    """
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2020-01-02", periods=n_bars)
    frames = []
    for sym in ("AAA", "BBB", "CCC", "DDD"):
        r = rng.normal(0.0003, 0.015, n_bars)
        close = 40.0 * np.exp(np.cumsum(r))
        volume = rng.lognormal(11, 0.4, n_bars)
        keep = np.ones(n_bars, dtype=bool)
        if sym == "BBB":
            keep[:20] = False
            keep[rng.choice(np.arange(25, n_bars - 5), 10, replace=False)] = False
        if sym == "CCC":
            h0 = n_bars // 3
            close[h0 : h0 + 5] = close[h0 - 1]
            volume[h0 : h0 + 5] = 0.0
        if sym == "DDD":
            close[n_bars // 2 :] /= 2.0
            volume[n_bars // 2 :] *= 2.0
        prev = np.concatenate([[close[0]], close[:-1]])
        opn = prev * np.exp(rng.normal(0, 0.003, n_bars))
        if sym == "CCC":
            opn[h0 : h0 + 5] = close[h0 - 1]
        if sym == "DDD":
            opn[n_bars // 2] = close[n_bars // 2] * 1.001
        hi = np.maximum(opn, close) * (1 + np.abs(rng.normal(0, 0.004, n_bars)))
        lo = np.minimum(opn, close) * (1 - np.abs(rng.normal(0, 0.004, n_bars)))
        if sym == "CCC":
            hi[h0 : h0 + 5] = lo[h0 : h0 + 5] = close[h0 - 1]
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": days,
                    "symbol": sym,
                    "open": opn,
                    "high": hi,
                    "low": lo,
                    "close": close,
                    "volume": volume,
                }
            )[keep]
        )
    panel = pd.concat(frames).set_index(["timestamp", "symbol"]).sort_index()
    return panel


def perturb_after(panel: pd.DataFrame, cut: pd.Timestamp, seed: int = 0) -> pd.DataFrame:
    """Copy of ``panel`` with every bar after ``cut`` replaced by different, still valid, values."""
    rng = np.random.default_rng(seed)
    out = panel.copy()
    late = out.index.get_level_values("timestamp") > cut
    n = int(late.sum())
    if n == 0:
        return out
    close = out.loc[late, "close"].to_numpy() * np.exp(rng.normal(0, 0.1, n))
    opn = close * np.exp(rng.normal(0, 0.02, n))
    out.loc[late, "close"] = close
    out.loc[late, "open"] = opn
    out.loc[late, "high"] = np.maximum(opn, close) * (1 + rng.uniform(0, 0.05, n))
    out.loc[late, "low"] = np.minimum(opn, close) * (1 - rng.uniform(0, 0.05, n))
    out.loc[late, "volume"] = rng.lognormal(10, 1.0, n)
    if "adj_close" in out.columns:
        out.loc[late, "adj_close"] = close
    return out


def check_no_lookahead(
    panel: pd.DataFrame,
    fn: Callable[[pd.DataFrame], pd.DataFrame | pd.Series],
    *,
    horizon: int = 0,
    cuts: Sequence[pd.Timestamp] | None = None,
    name: str = "output",
) -> int:
    """Future perturbation: values at or before ``cut - horizon`` must not depend on later bars.

    For each cut point, every bar after it is replaced (:func:`perturb_after`) and ``fn`` is
    recomputed. Rows whose value may legitimately see the future (a label at ``t`` looks at the
    symbol's next ``horizon`` bars) are exempt only while those bars reach past the cut.

    Args:
        panel: Panel to test on (e.g. :func:`leakage_panel`).
        fn: ``panel -> frame or series`` on the panel's index (features, labels...).
        horizon: Bars ``fn`` may look ahead (0 for features).
        cuts: Cut timestamps; default every timestamp but the last.
        name: Used in the error message.

    Returns:
        Number of cut points checked.

    Raises:
        LeakageError: naming the column, the first changed row and the cut.
    """
    base = fn(panel)
    base_df = base.to_frame() if isinstance(base, pd.Series) else base
    ts = panel.index.get_level_values("timestamp")
    grid = ts.unique().sort_values()
    cuts = list(grid[:-1]) if cuts is None else list(cuts)
    # timestamp of the bar `horizon` bars ahead within the symbol (the label's last input)
    if horizon:
        stamps = pd.Series(ts, index=panel.index)
        reach = stamps.groupby(level="symbol", sort=False).shift(-horizon).fillna(stamps)
    else:
        reach = pd.Series(ts, index=panel.index)
    base_vals = base_df.to_numpy(dtype="float64")
    for i, cut in enumerate(cuts):
        other = fn(perturb_after(panel, cut, seed=i))
        other_df = other.to_frame() if isinstance(other, pd.Series) else other
        must = (reach <= cut).to_numpy()
        a, b = base_vals[must], other_df.to_numpy(dtype="float64")[must]
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        if not same.all():
            r, c = np.argwhere(~same)[0]
            row = base_df.index[np.flatnonzero(must)[r]]
            raise LeakageError(
                f"{name}: column {base_df.columns[c]!r} at {row} changed from {a[r, c]!r} to "
                f"{b[r, c]!r} when only bars after {cut} changed (horizon {horizon})"
            )
    return len(cuts)


# ----------------------------------------------------------------------------- file damage
def truncate_file(path: Path) -> None:
    """Cut ``path`` to half its size, as a write killed midway or a full disk leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_bit(path: Path) -> None:
    """Flip one bit in the middle of ``path``: damage that leaves the size, and often the format,
    intact."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x04
    path.write_bytes(bytes(data))


#: the damages every artifact alphaforge reads back must be caught by
FILE_DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": truncate_file,
    "bit-flipped": flip_bit,
}
