"""Vectorised backtests of forecasts: predictions -> target weights -> held positions -> P&L.

- **Timing.** A prediction stamped ``t`` is known at the close of bar ``t``. The weights it sets
  are first held over the bar ``delay`` grid rows later (``delay >= 1``; 1 = trade at the next
  bar), so with ``delay=1`` they earn ``r[t+1]``, the return of the bar that *ends* one row after
  ``t``. ``delay=0`` would trade on the close that produced the signal and is refused.
- **Grid.** Bars are the sorted union of the timestamps in ``returns``; columns are the symbols of
  the predictions. A symbol with no return at a bar (absent, or NaN like its first bar) earns 0.
- **Window.** Result bars run from the first bar a position can be held (first prediction row +
  ``delay``) to the bar the last prediction is held over (last prediction row + ``delay``), clipped
  to the grid. Positions are left open at the end (no exit cost).
- **Rebalancing.** Targets are re-decided on every ``rebalance_every``-th grid row counted from the
  first prediction and held *constant* in between. Price drift is not modelled: a real book drifts
  away from its target, so re-trading to target would cost slightly more than reported. A
  rebalance row without predictions (a gap between test folds) reaches the strategy as all-NaN:
  LongShort, SignThreshold and TopK go flat; TopK with ``n_drop`` sells at most ``n_drop`` names.
- **Costs.** ``costs_bps`` per side on traded notional: ``cost = turnover * bps / 1e4`` with
  ``turnover = sum_s |w_s(t) - w_s(t-1)|`` (fraction of capital; the first bar pays the entry
  ``sum |w|``); ``min_cost`` floors the cost of each symbol traded. Weights are fractions of
  capital (+ long, - short); P&L is ``sum_s w_s * r_s`` per bar (simple returns, no compounding
  inside the bar, no financing or borrow cost).
- **Strategies** are frozen dataclasses with ``weights(signal) -> weights`` on wide (R, N) arrays
  whose rows are the successive *rebalance* rows only (so TopK's path-dependent drop rule stays
  right with ``rebalance_every > 1``). Any object with such a method can be passed.
- **Degenerate books warn.** A book that cannot depend on the forecasts makes every model look
  alike: TopK with ``k`` >= the symbols predicted (it holds them all), LongShort with fewer than
  2 symbols (flat) or a quantile below one name per leg (raised to 1 name), SignThreshold whose
  predictions all fall on one side (long or short everything at every bar, e.g. a rank in [0, 1]).
  Each is logged as a WARNING and listed in ``summary["warnings"]``.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alphaforge.errors import ConfigError, DataError

__all__ = [
    "STRATEGIES",
    "BacktestResult",
    "BacktestSpec",
    "LongShort",
    "SignThreshold",
    "Strategy",
    "TopK",
    "backtest",
    "bar_returns",
    "from_spec",
    "get_strategy",
    "infer_periods_per_year",
    "lag_test",
    "spec_settings",
]

logger = logging.getLogger(__name__)

TS, SYM = "timestamp", "symbol"
_TRADED = 1e-12  # |dw| at or below this is float noise, not a trade (matters for min_cost only)
SUMMARY_KEYS = (
    "ann_return",
    "ann_vol",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "hit_rate",
    "avg_turnover",
    "cost_drag",
    "n_bars",
)


# ----------------------------------------------------------------------------- strategies


class Strategy(Protocol):
    """Maps an (R, N) signal to (R, N) target weights; rows = rebalance rows in time order."""

    def weights(self, signal: Any) -> Any: ...


class _Wide:
    """Shared I/O: take an (R, N) array or DataFrame (NaN = no prediction), return the same."""

    def weights(self, signal: np.ndarray | pd.DataFrame) -> np.ndarray | pd.DataFrame:
        """(R, N) target weights, fractions of capital (+ long, - short), one row per signal row.

        Args:
            signal: (R, N) predictions, rows = successive rebalance rows, NaN = not available.

        Returns:
            (R, N) finite weights; a DataFrame with the same labels if ``signal`` was one.
        """
        arr = np.asarray(signal, dtype=np.float64)
        if arr.ndim != 2:
            raise DataError(f"signal must be 2-D (rebalance rows, symbols), got shape {arr.shape}")
        w = self._weights(arr)
        assert w.shape == arr.shape  # internal invariant of every strategy below
        if isinstance(signal, pd.DataFrame):
            return pd.DataFrame(w, index=signal.index, columns=signal.columns)
        return w

    def _weights(self, s: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError


def _membership(frame: pd.DataFrame, n_leg: np.ndarray, *, largest: bool) -> np.ndarray:
    """(R, N) share of each symbol in the ``n_leg`` best (or worst) of its row; NaN -> 0.

    A tied group straddling the cut shares the remaining slots equally (the expected membership
    under random tie-breaking), so weights do not depend on column order. Rows sum to ``n_leg``.
    """
    best = frame.rank(axis=1, method="min", ascending=not largest).to_numpy()  # first place of tie
    size = frame.rank(axis=1, method="max", ascending=not largest).to_numpy() - best + 1
    slots = np.clip(n_leg - (best - 1), 0, size)  # places of the leg left for this tie group
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(slots / size)


@dataclass(frozen=True)
class LongShort(_Wide):
    """Dollar-neutral long-short: long the top ``quantile`` of predictions, short the bottom one.

    With ``n`` valid predictions in a row each leg holds ``floor(n * quantile)`` names (at least 1
    when ``n >= 2``, at most ``n // 2``); fewer than 2 valid predictions -> flat. Ties at a leg's
    edge share it fractionally. Each leg sums to ``gross / 2``.

    Args:
        quantile: Share of the valid symbols in each leg, in (0, 0.5].
        weighting: ``"equal"`` or ``"score"``: within a leg, weights proportional to
            ``|score - cross-sectional median|`` (centred on the median, not the mean, so every
            long weight stays >= 0 with skewed scores; an all-zero leg falls back to equal).
        gross: Gross exposure ``sum |w|``, fraction of capital (1.0 = 50% long, 50% short).
    """

    quantile: float = 0.2
    weighting: Literal["equal", "score"] = "equal"
    gross: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.quantile <= 0.5:
            raise ConfigError(f"LongShort.quantile must be in (0, 0.5], got {self.quantile}")
        if self.weighting not in ("equal", "score"):
            raise ConfigError(
                f"LongShort.weighting must be 'equal' or 'score', got {self.weighting!r}"
            )
        if not self.gross > 0:
            raise ConfigError(f"LongShort.gross must be > 0, got {self.gross}")

    def _weights(self, s: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(s)
        n = frame.count(axis=1).to_numpy()  # (R,) valid predictions per row
        n_leg = np.minimum(np.floor(n * self.quantile + 1e-9), n // 2)  # eps: 0.2 * 10 -> 2, not 1
        n_leg = np.where(n >= 2, np.maximum(n_leg, 1), 0)[:, None]  # (R, 1)
        top = _membership(frame, n_leg, largest=True)  # (R, N) in [0, 1]
        bottom = _membership(frame, n_leg, largest=False)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.weighting == "score":
                tilt = np.nan_to_num(np.abs(s - frame.median(axis=1).to_numpy()[:, None]))
                top, bottom = _score_leg(top, tilt), _score_leg(bottom, tilt)
            else:
                top, bottom = top / n_leg, bottom / n_leg  # each leg sums to 1
        return np.nan_to_num(self.gross / 2 * (top - bottom))


def _score_leg(member: np.ndarray, tilt: np.ndarray) -> np.ndarray:
    """Leg weights summing to 1 per row, proportional to ``member * tilt`` (equal if all zero)."""
    raw = member * tilt
    total = raw.sum(axis=1, keepdims=True)
    equal = member / member.sum(axis=1, keepdims=True)
    return np.where(total > 0, raw / total, equal)


@dataclass(frozen=True)
class TopK(_Wide):
    """Long-only top-k book, weight ``1 / k`` per name (fewer than k available -> rest in cash).

    Without ``n_drop`` each rebalance holds the k best predictions. With ``n_drop`` (Qlib's
    TopkDropout): held names that are no longer in the current top k (a held name without a
    prediction counts as worst) are sold, at most the ``n_drop`` worst-ranked of them; then the
    best-ranked names not held (and not just sold) are bought to refill to k. Turnover per
    rebalance is then at most ``2 * n_drop / k``. Ties rank by column (symbol) order.

    Args:
        k: Names held, >= 1.
        n_drop: Most names replaced per rebalance (1 <= n_drop <= k), or None for a full rebalance.
    """

    k: int = 10
    n_drop: int | None = None

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"TopK.k must be >= 1, got {self.k}")
        if self.n_drop is not None and not 1 <= self.n_drop <= self.k:
            raise ConfigError(f"TopK.n_drop must be in [1, k={self.k}] or None, got {self.n_drop}")

    def _weights(self, s: np.ndarray) -> np.ndarray:
        R, N = s.shape
        valid = ~np.isnan(s)
        order = np.argsort(np.where(valid, -s, np.inf), axis=1, kind="stable")  # (R, N) best first
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.broadcast_to(np.arange(N), (R, N)), axis=1)  # 0 = best
        top = (rank < self.k) & valid  # (R, N) current top k
        if self.n_drop is None:
            return top / self.k
        held = np.zeros((R, N), dtype=bool)
        cur = np.zeros(N, dtype=bool)  # holdings carried between rebalances (path-dependent rule)
        for i in range(R):  # O(N) numpy work per rebalance row
            out = np.flatnonzero(cur & ~top[i])  # held names that left the top k
            if out.size > self.n_drop:
                out = out[np.argsort(rank[i, out], kind="stable")[-self.n_drop :]]  # worst n_drop
            cur[out] = False
            row = order[i]
            sold = np.zeros(N, dtype=bool)
            sold[out] = True  # never buy back what was just sold
            buyable = valid[i, row] & ~cur[row] & ~sold[row]
            cur[row[buyable][: self.k - int(cur.sum())]] = True
            held[i] = cur
        return held / self.k


@dataclass(frozen=True)
class SignThreshold(_Wide):
    """Per-symbol sign rule: +1 if pred > threshold, -1 if pred < -threshold (0 if long-only).

    Each of the N symbols (columns of the predictions) gets ``1 / N`` of capital, whether or not
    it has a prediction at that bar; no prediction -> 0.

    Args:
        threshold: Dead band, in the prediction's units (>= 0).
        long_only: Never short; a prediction below ``-threshold`` means flat.
    """

    threshold: float = 0.0
    long_only: bool = False

    def __post_init__(self) -> None:
        if not self.threshold >= 0:
            raise ConfigError(f"SignThreshold.threshold must be >= 0, got {self.threshold}")

    def _weights(self, s: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):  # NaN compares False -> 0
            pos = (s > self.threshold).astype(np.float64)
            if not self.long_only:
                pos -= (s < -self.threshold).astype(np.float64)
        return pos / s.shape[1]


STRATEGIES: dict[str, type] = {"long_short": LongShort, "top_k": TopK, "sign": SignThreshold}


def get_strategy(name: str, **params: Any) -> Strategy:
    """Build a strategy by its config name (``long_short``, ``top_k``, ``sign``).

    Raises:
        ConfigError: Unknown name (listing the valid ones) or bad parameters.
    """
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; valid: {sorted(STRATEGIES)}")
    try:
        return STRATEGIES[name](**params)
    except TypeError as exc:
        raise ConfigError(f"strategy {name!r}: {exc}") from None


# ----------------------------------------------------------------------------- inputs


def bar_returns(panel: pd.DataFrame, price: str = "close") -> pd.Series:
    """One-bar simple returns per symbol: ``r[t, s] = price[t, s] / price[t_prev, s] - 1``.

    ``t_prev`` is the symbol's own previous bar (gaps in one symbol do not borrow another's
    grid). Looks backward only: ``r[t]`` is known at the close of ``t``.

    Args:
        panel: Long frame indexed by ``(timestamp, symbol)`` with a positive ``price`` column.
        price: Column to use.

    Returns:
        Series named ``"return"``, fraction per bar, indexed by sorted ``(timestamp, symbol)``;
        NaN on each symbol's first bar.

    Raises:
        DataError: Missing column, bad index, or non-positive prices.
    """
    if price not in panel.columns:
        raise DataError(f"panel has no {price!r} column; columns: {list(panel.columns)}")
    px = _as_series(panel[price], "panel").sort_index()
    if (px <= 0).any():
        bad = px[px <= 0].index[0]
        raise DataError(f"{price} {px[bad]} <= 0", symbol=str(bad[1]), timestamp=bad[0])
    prev = px.groupby(level=SYM, sort=False).shift(1)  # (rows,) previous bar of the same symbol
    return (px / prev - 1).rename("return")


def _as_series(obj: Any, name: str) -> pd.Series:
    """Float64 Series indexed by (timestamp, symbol), from a Series or a long predictions frame."""
    if isinstance(obj, pd.DataFrame) and name == "predictions":
        frame = obj.reset_index() if TS in (obj.index.names or []) else obj
        missing = {TS, SYM, "y_pred"} - set(frame.columns)
        if missing:
            raise DataError(f"{name}: missing columns {sorted(missing)}; got {list(frame.columns)}")
        for col, hint in (("model", "one model"), ("split", "split == 'test'")):
            if col in frame.columns and frame[col].nunique() > 1:
                raise DataError(
                    f"{name}: {frame[col].nunique()} distinct {col!r} values; filter {hint} first"
                )
        obj = frame.set_index([TS, SYM])["y_pred"]
    if not isinstance(obj, pd.Series):
        raise DataError(f"{name} must be a pandas Series, got {type(obj).__name__}")
    idx = obj.index
    if not isinstance(idx, pd.MultiIndex) or idx.nlevels != 2:
        raise DataError(f"{name} must be indexed by a (timestamp, symbol) MultiIndex")
    if list(idx.names) == [None, None]:
        obj = obj.rename_axis([TS, SYM])
    elif set(idx.names) != {TS, SYM}:
        raise DataError(f"{name}: index levels must be named (timestamp, symbol), got {idx.names}")
    elif idx.names[0] == SYM:
        obj = obj.reorder_levels([TS, SYM])
    if not pd.api.types.is_numeric_dtype(obj.dtype):
        raise DataError(f"{name} must be numeric, got dtype {obj.dtype}")
    out = obj.astype(np.float64)
    if np.isinf(out.to_numpy()).any():
        raise DataError(f"{name} holds +-inf", timestamp=out.index[np.isinf(out.to_numpy())][0])
    dup = out.index.duplicated()
    if dup.any():
        t, s = out.index[dup][0]
        raise DataError(f"{name}: duplicated (timestamp, symbol) row", symbol=str(s), timestamp=t)
    return out


def _align(predictions: Any, returns: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Wide (T, N) signal and returns on the returns' timestamp grid and predictions' symbols."""
    pred = _as_series(predictions, "predictions")
    ret = _as_series(returns, "returns")
    grid = ret.index.get_level_values(TS).unique().sort_values()
    symbols = pred.index.get_level_values(SYM).unique().sort_values()
    off = ~pred.index.get_level_values(TS).isin(grid)
    if off.all():
        raise DataError("predictions share no timestamp with returns")
    if off.any():
        logger.warning(
            "backtest: dropped %d prediction rows at timestamps not in returns (first %s)",
            int(off.sum()),
            pred.index[off][0][0],
        )
    signal = pred[~off].unstack(SYM).reindex(index=grid, columns=symbols)  # (T, N), NaN = none
    wide_ret = ret.unstack(SYM).reindex(index=grid, columns=symbols)  # (T, N), NaN earns 0
    return signal, wide_ret


def infer_periods_per_year(timestamps: pd.Index) -> float:
    """Bars per year from the median spacing ``d`` of a timestamp grid.

    Rule: ``d > 4 days``: 365.25 days over the *mean* spacing (weekly ~52, monthly 12);
    ``20 h <= d <= 4 days`` (daily): 252 trading days, or 365 when more than 5% of bars fall on a
    weekend (a 24/7 market such as crypto); ``d < 20 h`` (intraday): ``365 * 24 * 3600 / d`` for a
    24/7 market (weekend bars; 15-min crypto: 35,040), else 252 x the median number of bars per
    calendar day (exchange session bars). A short intraday sample with no weekend is read as
    session bars: pass ``periods_per_year`` to override.

    Raises:
        ConfigError: Not datetimes or fewer than 2 distinct timestamps.
    """
    ts = timestamps.unique().sort_values() if isinstance(timestamps, pd.DatetimeIndex) else None
    if ts is None or len(ts) < 2:
        raise ConfigError(
            "cannot infer periods_per_year (need >= 2 datetime timestamps); pass periods_per_year"
        )
    d = float(pd.Series(ts).diff().dropna().dt.total_seconds().median())
    weekend = float(np.mean(ts.day_of_week >= 5)) > 0.05
    if d > 4 * 86400:  # mean spacing here: months of 28-31 days average out to 1/12 year
        return 365.25 * 86400 * (len(ts) - 1) / (ts[-1] - ts[0]).total_seconds()
    if d >= 20 * 3600:
        return 365.0 if weekend else 252.0
    if weekend:
        return 365 * 86400 / d
    return 252.0 * float(pd.Series(ts.normalize()).value_counts().median())


# ----------------------------------------------------------------------------- engine


@dataclass
class BacktestResult:
    """What :func:`backtest` returns.

    Attributes:
        returns: Per result bar (index ``timestamp`` = end of the bar): ``gross`` and ``net``
            returns (fractions), ``cost`` (fraction of capital), ``turnover`` (one-way traded
            notional, fraction of capital), ``n_long`` / ``n_short`` (names held).
        positions: (bars, symbols) weights held over each bar, fractions of capital.
        summary: ``{"gross": {...}, "net": {...}, "warnings": [...]}``; gross and net each with
            ``ann_return`` (geometric), ``ann_vol``, ``sharpe`` (mean / std * sqrt(ppy), rf = 0),
            ``sortino`` (downside deviation around 0), ``max_drawdown`` (<= 0), ``calmar``,
            ``hit_rate`` (share of bars with a position whose return is > 0; NaN when no bar
            holds one), ``avg_turnover`` (per bar), ``cost_drag`` (annualised gross - net
            return) and ``n_bars``. Undefined ratios are NaN. ``warnings``: one sentence per
            reason the book cannot depend on the forecasts (module docstring); empty if none.
        periods_per_year: Bars per year used to annualise.
        capital: Starting equity, in currency units.
    """

    returns: pd.DataFrame
    positions: pd.DataFrame
    summary: dict[str, Any]
    periods_per_year: float
    capital: float = 1.0

    def equity(self, kind: Literal["gross", "net"] = "net") -> pd.Series:
        """Equity after each bar, ``capital * cumprod(1 + r)``, in currency units."""
        if kind not in ("gross", "net"):
            raise ConfigError(f"kind must be 'gross' or 'net', got {kind!r}")
        return (self.capital * (1 + self.returns[kind]).cumprod()).rename(f"equity_{kind}")

    def drawdown(self, kind: Literal["gross", "net"] = "net") -> pd.Series:
        """Fractional drawdown (<= 0) from the running peak, starting capital included."""
        eq = self.equity(kind)
        peak = np.maximum(eq.cummax(), self.capital)
        return (eq / peak - 1).rename(f"drawdown_{kind}")


def _check_args(
    delay: int,
    rebalance_every: int,
    costs_bps: float,
    min_cost: float,
    periods_per_year: float | None,
    capital: float,
) -> None:
    if not isinstance(delay, (int, np.integer)) or delay < 1:
        raise ConfigError(
            f"delay must be an integer >= 1 bar (1 = trade on the bar after the "
            f"signal; 0 would look ahead), got {delay!r}"
        )
    if not isinstance(rebalance_every, (int, np.integer)) or rebalance_every < 1:
        raise ConfigError(f"rebalance_every must be an integer >= 1, got {rebalance_every!r}")
    for key, val in (("costs_bps", costs_bps), ("min_cost", min_cost)):
        if not val >= 0:
            raise ConfigError(f"{key} must be >= 0, got {val}")
    if periods_per_year is not None and not periods_per_year > 0:
        raise ConfigError(f"periods_per_year must be > 0, got {periods_per_year}")
    if not capital > 0:
        raise ConfigError(f"capital must be > 0, got {capital}")


class _Once(logging.Filter):
    """Lets each distinct message through once."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = record.getMessage()
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


@contextlib.contextmanager
def warnings_once() -> Iterator[None]:
    """Within the block, each distinct backtest log message is emitted once (many models share
    one strategy, and one degenerate setting would otherwise warn once per model)."""
    once = _Once()
    logger.addFilter(once)
    try:
        yield
    finally:
        logger.removeFilter(once)


def backtest(
    predictions: pd.DataFrame | pd.Series,
    returns: pd.Series,
    strategy: Strategy | str,
    *,
    costs_bps: float = 0.0,
    min_cost: float = 0.0,
    delay: int = 1,
    rebalance_every: int = 1,
    periods_per_year: float | None = None,
    capital: float = 1.0,
) -> BacktestResult:
    """Trade a strategy on predictions and realised bar returns (timing rules: module docstring).

    Args:
        predictions: Long frame with ``timestamp, symbol, y_pred`` (one model, one split), or a
            ``y_pred`` Series indexed by ``(timestamp, symbol)``; ``y_pred[t]`` known at close t.
        returns: One-bar simple returns indexed by ``(timestamp, symbol)`` (see
            :func:`bar_returns`); ``r[t]`` is the bar ending at ``t``. Its timestamps are the grid.
        strategy: A :class:`Strategy` or a name from :data:`STRATEGIES` (default parameters).
        costs_bps: Cost per side, basis points of traded notional.
        min_cost: Least cost of each symbol traded, fraction of capital.
        delay: Grid rows between a signal and the first bar it is held over (>= 1).
        rebalance_every: Re-decide target weights every n grid rows; hold them in between.
        periods_per_year: Bars per year; inferred from the grid if None
            (:func:`infer_periods_per_year`).
        capital: Starting equity for :meth:`BacktestResult.equity`, currency units.

    Returns:
        :class:`BacktestResult` over the result bars.

    Raises:
        ConfigError: Bad arguments or strategy.
        DataError: Malformed inputs, no overlap, or no bar left to trade.
    """
    strat = get_strategy(strategy) if isinstance(strategy, str) else strategy
    if not callable(getattr(strat, "weights", None)):
        raise ConfigError(f"strategy must have a weights() method, got {type(strat).__name__}")
    _check_args(delay, rebalance_every, costs_bps, min_cost, periods_per_year, capital)
    signal, wide_ret = _align(predictions, returns)
    s = signal.to_numpy()  # (T, N)
    r = np.nan_to_num(wide_ret.to_numpy())  # (T, N), missing return -> earns 0
    T, N = s.shape
    rows = np.flatnonzero(~np.isnan(s).all(axis=1))  # grid rows with any prediction
    if rows.size == 0:
        raise DataError("predictions hold no finite value")
    first, last = int(rows[0]), int(rows[-1])
    if first + delay > T - 1:
        raise DataError(
            f"no bar to trade: first prediction at {signal.index[first]} + delay "
            f"{delay} is past the last return bar {signal.index[-1]}"
        )
    rebal = np.arange(first, last + 1, rebalance_every)  # (R,) rows where targets are re-decided
    target = np.asarray(strat.weights(s[rebal]), dtype=np.float64)  # (R, N)
    if target.shape != (rebal.size, N) or not np.isfinite(target).all():
        raise ConfigError(
            f"strategy {strat!r} must return finite weights of shape "
            f"{(rebal.size, N)}, got shape {target.shape}"
        )
    bars = np.arange(first + delay, min(last + delay, T - 1) + 1)  # (J,) result rows
    held = target[(bars - delay - first) // rebalance_every]  # (J, N) decision held over each bar
    trade = np.abs(np.diff(held, axis=0, prepend=np.zeros((1, N))))  # (J, N) |dw|, entry first
    turnover = trade.sum(axis=1)
    if min_cost > 0:
        per_trade = np.maximum(trade * costs_bps / 1e4, min_cost)
        cost = np.where(trade > _TRADED, per_trade, 0.0).sum(axis=1)
    else:
        cost = turnover * costs_bps / 1e4  # exact form: net = gross - turnover * bps / 1e4
    gross = (held * r[bars]).sum(axis=1)
    index = pd.Index(signal.index[bars], name=TS)
    out = pd.DataFrame(
        {
            "gross": gross,
            "net": gross - cost,
            "cost": cost,
            "turnover": turnover,
            "n_long": (held > 0).sum(axis=1),
            "n_short": (held < 0).sum(axis=1),
        },
        index=index,
    )
    ppy = float(periods_per_year) if periods_per_year else infer_periods_per_year(signal.index)
    active = np.abs(held).sum(axis=1) > 0  # (J,) bars with a position
    summary = _summary(out, active, ppy)
    summary["warnings"] = _degenerate(strat, s[rebal])
    for text in summary["warnings"]:
        logger.warning("backtest %r: %s", strat, text)
    if not active.any():
        logger.info("backtest %r: no position at any bar (constant or missing forecasts)", strat)
    positions = pd.DataFrame(held, index=index, columns=signal.columns)
    logger.info(
        "backtest %r: %d bars x %d symbols, net Sharpe %.2f, avg turnover %.3f/bar",
        strat,
        len(bars),
        N,
        summary["net"]["sharpe"],
        summary["net"]["avg_turnover"],
    )
    return BacktestResult(out, positions, summary, ppy, float(capital))


def _summary(out: pd.DataFrame, active: np.ndarray, ppy: float) -> dict[str, Any]:
    """``{"gross": stats, "net": stats}`` of a result frame, ``cost_drag`` filled in."""
    turnover = out["turnover"].to_numpy()
    summary: dict[str, Any] = {
        k: _stats(out[k].to_numpy(), turnover, active, ppy) for k in ("gross", "net")
    }
    drag = summary["gross"]["ann_return"] - summary["net"]["ann_return"]
    for kind in ("gross", "net"):
        summary[kind]["cost_drag"] = drag
    return summary


def _degenerate(strat: Strategy, signal: np.ndarray) -> list[str]:
    """Why the book of ``strat`` on this (R, N) rebalance signal cannot depend on the forecasts.

    Judged on the row with the most predictions, so a ragged start does not trigger a warning.
    """
    n_valid = int((~np.isnan(signal)).sum(axis=1).max())  # most symbols predicted at a rebalance
    if isinstance(strat, TopK) and strat.k >= n_valid:
        return [
            f"top_k with k={strat.k} >= the {n_valid} symbols predicted holds every symbol "
            "(equal weights), whatever the forecasts: every model gets the same result; "
            "choose k below the number of symbols"
        ]
    if isinstance(strat, LongShort):
        if n_valid < 2:
            return [f"long_short needs >= 2 symbols per bar, got {n_valid}: the book is flat"]
        if math.floor(n_valid * strat.quantile + 1e-9) < 1:
            return [
                f"long_short quantile={strat.quantile:g} of {n_valid} symbols is "
                f"{n_valid * strat.quantile:.2g} (< 1) symbol per leg: each leg holds 1 "
                f"symbol (quantile {1 / n_valid:.2g} in effect); raise the quantile or add "
                "symbols"
            ]
    if isinstance(strat, SignThreshold):
        ok = signal[~np.isnan(signal)]
        for side, hit in (("long", ok > strat.threshold), ("short", ok < -strat.threshold)):
            if ok.size and hit.all() and not (side == "short" and strat.long_only):
                t = strat.threshold
                edge = f"above {t:g}" if side == "long" else f"below {-t:g}" if t else "below 0"
                return [
                    f"sign: every prediction is {edge}, so the book is {side} every symbol at "
                    f"every bar ({'buy' if side == 'long' else 'sell'} and hold): the same for "
                    "every model whose forecasts never change sign (e.g. a cross-sectional "
                    "rank in [0, 1])"
                ]
    return []


def _stats(r: np.ndarray, turnover: np.ndarray, active: np.ndarray, ppy: float) -> dict[str, float]:
    """Summary statistics of one (J,) return series; undefined ratios are NaN."""
    n = r.size
    nan = float("nan")
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        log_growth = np.log1p(r).sum() if (r > -1).all() else -np.inf
        ann_return = float(np.expm1(log_growth * ppy / n))  # geometric; -1 once wiped out
        sd = float(r.std(ddof=1)) if n > 1 else nan
        mean = float(r.mean())
        down = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)))  # downside deviation around 0
        equity = np.cumprod(1 + r)
        peak = np.maximum(np.maximum.accumulate(equity), 1.0)  # starting capital is a peak
        mdd = float(min(np.min(equity / peak - 1), 0.0))
    root = math.sqrt(ppy)
    return {
        "ann_return": ann_return,
        "ann_vol": sd * root,
        "sharpe": mean / sd * root if sd > 0 else nan,
        "sortino": mean / down * root if down > 0 else nan,
        "max_drawdown": mdd,
        "calmar": ann_return / -mdd if mdd < 0 else nan,
        "hit_rate": float(np.mean(r[active] > 0)) if active.any() else nan,
        "avg_turnover": float(turnover.mean()),
        "cost_drag": nan,  # filled by backtest() once both gross and net are known
        "n_bars": n,
    }


def lag_test(
    predictions: pd.DataFrame | pd.Series, returns: pd.Series, strategy: Strategy | str, **kw: Any
) -> dict[str, Any]:
    """Leakage check: the same backtest with ``delay`` and with ``delay + 1``.

    A genuine signal usually loses a little edge with one more bar of delay; a Sharpe that
    collapses to ~0 means the edge lived in the very bar the prediction should not know.

    Args:
        predictions: As for :func:`backtest`.
        returns: As for :func:`backtest`.
        strategy: As for :func:`backtest`.
        **kw: Keyword arguments of :func:`backtest` (``delay`` defaults to 1).

    Returns:
        ``{"base": summary, "lagged": summary, "sharpe_drop": float}``; ``sharpe_drop`` is the
        *gross* Sharpe of the base run minus that of the lagged run (costs do not bear on leakage).
    """
    delay = kw.pop("delay", 1)
    base = backtest(predictions, returns, strategy, delay=delay, **kw).summary
    lagged = backtest(predictions, returns, strategy, delay=delay + 1, **kw).summary
    drop = base["gross"]["sharpe"] - lagged["gross"]["sharpe"]
    return {"base": base, "lagged": lagged, "sharpe_drop": drop}


# ----------------------------------------------------------------------------- config


_STRATEGY_PARAMS = {
    "long_short": ("quantile", "weighting", "gross"),
    "top_k": ("k", "n_drop"),
    "sign": ("threshold", "long_only"),
}


class BacktestSpec(BaseModel):
    """Backtest section of an experiment config; unknown keys and foreign parameters are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Literal["long_short", "top_k", "sign"] = "long_short"
    quantile: float = Field(0.2, gt=0, le=0.5, description="long_short: share of symbols per leg")
    weighting: Literal["equal", "score"] = Field("equal", description="long_short: leg weights")
    gross: float = Field(1.0, gt=0, description="long_short: gross exposure, fraction of capital")
    k: int = Field(10, ge=1, description="top_k: names held")
    n_drop: int | None = Field(None, ge=1, description="top_k: most names replaced per rebalance")
    threshold: float = Field(0.0, ge=0, description="sign: dead band, prediction units")
    long_only: bool = Field(False, description="sign: never short")
    costs_bps: float = Field(5.0, ge=0, description="cost per side, bps of traded notional")
    min_cost: float = Field(0.0, ge=0, description="least cost per symbol traded, capital fraction")
    delay: int = Field(1, ge=1, description="bars between signal and first bar held")
    rebalance_every: int = Field(1, ge=1, description="bars between rebalances")
    periods_per_year: float | None = Field(None, gt=0, description="default: inferred from bars")

    @model_validator(mode="after")
    def _params_fit_strategy(self) -> BacktestSpec:
        own = _STRATEGY_PARAMS[self.strategy]
        foreign = sorted(
            k
            for p in _STRATEGY_PARAMS.values()
            for k in p
            if k in self.model_fields_set and k not in own
        )
        if foreign:
            raise ValueError(
                f"{foreign} do not apply to strategy {self.strategy!r} "
                f"(its parameters: {list(own)})"
            )
        if self.n_drop is not None and self.n_drop > self.k:
            raise ValueError(f"n_drop ({self.n_drop}) must be <= k ({self.k})")
        return self


def spec_settings(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a backtest spec that apply to its strategy, in spec order.

    Drops the other strategies' parameters (a ``long_short`` book has no ``k``) and unset
    (None) values, e.g. to print a run's ``metrics.json["backtest_spec"]``.

    Args:
        spec: A :class:`BacktestSpec` dumped to a mapping (``model_dump()``), possibly partial.

    Returns:
        ``{"strategy": ..., <its parameters>, <execution settings>}`` without None values.
    """
    strategy = spec.get("strategy", "long_short")
    own = set(_STRATEGY_PARAMS.get(strategy, ()))
    foreign = {k for p in _STRATEGY_PARAMS.values() for k in p} - own
    return {k: v for k, v in spec.items() if k not in foreign and v is not None}


def from_spec(spec: BacktestSpec | Mapping[str, Any]) -> tuple[Strategy, dict[str, Any]]:
    """Turn a spec (or its mapping) into ``(strategy, backtest keyword arguments)``.

    Example:
        ``strategy, kw = from_spec({"strategy": "top_k", "k": 5, "n_drop": 1})`` then
        ``backtest(predictions, returns, strategy, **kw)``.

    Raises:
        ConfigError: Unknown keys (naming the valid ones), bad values, foreign parameters.
    """
    if not isinstance(spec, BacktestSpec):
        try:
            spec = BacktestSpec.model_validate(dict(spec))
        except ValidationError as exc:
            parts = []
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                if err["type"] == "extra_forbidden":
                    parts.append(f"unknown key {loc!r}; valid: {sorted(BacktestSpec.model_fields)}")
                else:
                    msg = err["msg"].removeprefix("Value error, ")
                    parts.append(f"{loc}: {msg}" if loc else msg)
            raise ConfigError(f"backtest: {'; '.join(parts)}") from None
    params = {name: getattr(spec, name) for name in _STRATEGY_PARAMS[spec.strategy]}
    kwargs = {
        name: getattr(spec, name)
        for name in ("costs_bps", "min_cost", "delay", "rebalance_every", "periods_per_year")
    }
    return get_strategy(spec.strategy, **params), kwargs
