"""Labels: what a model learns to predict. Every label declares its horizon ``h``.

A label at bar ``t`` of a symbol looks *forward* over that symbol's next ``h`` bars; it is the only
place in alphaforge that does. The horizon sets the purge width of
:class:`~alphaforge.splits.WalkForward` (a training row at ``t`` must not see prices inside the
next segment), and the leakage battery checks that a label at ``t`` only changes when bars
``t+1 .. t+h`` change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import ndtri

from alphaforge.errors import ConfigError, DataError


@dataclass(frozen=True)
class LabelDef:
    """A catalogue entry of :data:`LABELS`: name, what it measures and how it is scored."""

    name: str
    description: str
    label_kind: Literal["return", "volatility"]  # picks default metrics and baselines


Transform = Literal["none", "demean", "zscore", "rank", "rank_gauss"]
TRANSFORMS: tuple[str, ...] = ("none", "demean", "zscore", "rank", "rank_gauss")


@dataclass(frozen=True)
class LabelSpec:
    """What a model is fitted to predict; passed to ``fit`` next to ``y``.

    Attributes:
        kind: A key of :data:`LABELS` (``"forward_return"``, ``"realized_vol"`` ...).
        horizon: Bars ahead the label looks (``h >= 1``); also the purge width of the folds.
        price: Price column the label is computed from.
        transform: Per-timestamp transform of the *training target* across the symbols present
            (:func:`transform_label`); predictions, metrics and backtests stay on the raw
            label. ``"none"`` for the raw label.

    Raises:
        ConfigError: unknown kind or transform, bad horizon, or a cross-sectional transform of
            a volatility label.
    """

    kind: str = "forward_return"
    horizon: int = 1
    price: str = "close"
    transform: Transform = "none"

    def __post_init__(self) -> None:
        label_kind(self.kind)  # raises ConfigError naming the valid kinds
        _check_h(self.horizon)
        if self.transform not in TRANSFORMS:
            raise ConfigError(
                f"label.transform: unknown transform {self.transform!r}; valid: {TRANSFORMS}"
            )
        if self.cross_sectional and self.label_kind == "volatility":
            raise ConfigError(
                f"label.transform: {self.transform!r} ranks returns across symbols; a "
                f"volatility label ({self.kind!r}) is fitted on its own scale: use 'none'"
            )

    @property
    def cross_sectional(self) -> bool:
        """The training target is transformed across the symbols of each timestamp."""
        return self.transform != "none"

    @property
    def label_kind(self) -> Literal["return", "volatility"]:
        """``"return"`` or ``"volatility"``: what the label measures."""
        return LABELS[self.kind][0].label_kind


def _future_price(panel: pd.DataFrame, price: str, h: int) -> tuple[pd.Series, pd.Series]:
    # (rows,) -> (rows,): price h of the symbol's own bars ahead; NaN in the last h bars
    p = _price(panel, price)
    return p, p.groupby(level="symbol", sort=False).shift(-h)


def _price(panel: pd.DataFrame, price: str) -> pd.Series:
    if price not in panel.columns:
        raise ConfigError(
            f"label.price: column {price!r} not in the panel; available: {list(panel.columns)}"
        )
    return panel[price]


def forward_return(panel: pd.DataFrame, horizon: int = 1, *, price: str = "close") -> pd.Series:
    """Simple return from the close of bar ``t`` to the close ``horizon`` bars later.

    Args:
        panel: Validated panel indexed by (timestamp, symbol).
        horizon: ``h >= 1``, counted in the symbol's own bars.
        price: Price column (``close`` or ``adj_close``).

    Returns:
        Series on the panel's index; NaN for each symbol's last ``h`` bars. Looks forward ``h``.
    """
    p, fut = _future_price(panel, price, _check_h(horizon))
    return _named(fut / p - 1.0, "forward_return", horizon)


def forward_log_return(panel: pd.DataFrame, horizon: int = 1, *, price: str = "close") -> pd.Series:
    """Log return ``log(p[t+h] / p[t])`` over the symbol's next ``horizon`` bars.

    Looks forward ``h`` bars; NaN for each symbol's last ``h`` bars.
    """
    p, fut = _future_price(panel, price, _check_h(horizon))
    return _named(np.log(fut / p), "forward_log_return", horizon)


def direction(panel: pd.DataFrame, horizon: int = 1, *, price: str = "close") -> pd.Series:
    """1.0 if the ``horizon``-bar forward return is positive, 0.0 otherwise, NaN when unknown."""
    r = forward_return(panel, horizon, price=price)
    out = pd.Series(np.where(r.isna(), np.nan, (r > 0).astype(float)), index=r.index)
    return _named(out, "direction", horizon)


def realized_vol(panel: pd.DataFrame, horizon: int = 5, *, price: str = "close") -> pd.Series:
    """Realised volatility over the next ``horizon`` bars: ``sqrt(sum_{k=1..h} r[t+k]^2)``.

    ``r`` is the one-bar log return of the symbol's own bars. Not annualised: the units are those
    of an ``h``-bar log return, directly comparable with a GARCH ``h``-step forecast.
    """
    h = _check_h(horizon)
    p = _price(panel, price)
    g = p.groupby(level="symbol", sort=False)
    r2 = np.log(p / g.shift(1)) ** 2  # (rows,) squared one-bar log return ending at t
    # sum of r2 over bars t+1..t+h: a trailing h-sum that ends at t+h, shifted back by h
    trailing = r2.groupby(level="symbol", sort=False).rolling(h, min_periods=h).sum()
    trailing = trailing.droplevel(0).reindex(p.index)
    fwd = trailing.groupby(level="symbol", sort=False).shift(-h)
    return _named(np.sqrt(fwd), "realized_vol", h)


LABELS: dict[str, tuple[LabelDef, Callable[..., pd.Series]]] = {
    "forward_return": (
        LabelDef("forward_return", "simple return over the next h bars", "return"),
        forward_return,
    ),
    "forward_log_return": (
        LabelDef("forward_log_return", "log return over the next h bars", "return"),
        forward_log_return,
    ),
    "direction": (
        LabelDef("direction", "1 if the next-h-bar return is positive else 0", "return"),
        direction,
    ),
    "realized_vol": (
        LabelDef(
            "realized_vol", "sqrt of summed squared log returns over the next h bars", "volatility"
        ),
        realized_vol,
    ),
}


def make_label(panel: pd.DataFrame, kind: str, horizon: int, *, price: str = "close") -> pd.Series:
    """Build a label by name.

    Args:
        panel: Validated panel.
        kind: One of :data:`LABELS`.
        horizon: Bars ahead (``h >= 1``).
        price: Price column the label is computed from.

    Returns:
        Series named ``kind`` on the panel's index. What it is travels separately, as
        ``LabelSpec(kind, horizon, price)``, to ``fit``.

    Raises:
        ConfigError: unknown kind or bad horizon.
    """
    label_kind(kind)
    return LABELS[kind][1](panel, horizon, price=price)


def transform_label(y: pd.Series, transform: str) -> pd.Series:
    """Transform a label across the symbols present at each timestamp (training targets).

    Only labels of one timestamp enter its transform, so the transform of a row looks no further
    ahead than the raw labels of that timestamp (the folds purge those by the horizon).

    - ``demean``: ``y - mean_t``
    - ``zscore``: ``(y - mean_t) / std_t`` (sample std, ddof 1; 0 where ``std_t`` is 0)
    - ``rank``: centred percentile rank, ``((rank - 0.5) / n_t - 0.5) * sqrt(12)`` (ties share their
      average rank): uniform on about ``[-1.7, 1.7]`` with unit variance, robust to outliers
    - ``rank_gauss``: ``Phi^-1((rank - 0.5) / n_t)``: ranks mapped onto a standard normal

    Args:
        y: Label indexed by ``(timestamp, symbol)``; NaN rows stay NaN and are not counted.
        transform: One of :data:`TRANSFORMS`.

    Returns:
        Float series on ``y.index``, same name; NaN where ``y`` is NaN or the timestamp has
        fewer than 2 labelled symbols (``demean`` keeps single symbols at 0).

    Raises:
        ConfigError: unknown transform.
    """
    if transform not in TRANSFORMS:
        raise ConfigError(f"label.transform: unknown transform {transform!r}; valid: {TRANSFORMS}")
    y = y.astype("float64")
    if transform == "none":
        return y
    g = y.groupby(level="timestamp", sort=False)
    n = g.transform("count")
    if transform == "demean":
        return (y - g.transform("mean")).rename(y.name)
    if transform == "zscore":
        std = g.transform("std")  # ddof 1: NaN for a single symbol
        z = (y - g.transform("mean")) / std.where(std > 0)
        return z.where(std != 0, 0.0).where(y.notna() & (n >= 2)).rename(y.name)
    rank = g.rank(method="average")  # 1..n_t, ties averaged
    if transform == "rank":
        out = ((rank - 0.5) / n - 0.5) * np.sqrt(12.0)
    else:  # rank_gauss
        out = pd.Series(ndtri(((rank - 0.5) / n).to_numpy(np.float64)), index=y.index)
    return out.where(n >= 2).rename(y.name)


def label_kind(kind: str) -> Literal["return", "volatility"]:
    """``"return"`` or ``"volatility"`` for a label name (picks metrics and baselines)."""
    if kind not in LABELS:
        raise ConfigError(f"label.kind: unknown label {kind!r}; valid: {sorted(LABELS)}")
    return LABELS[kind][0].label_kind


def _check_h(horizon: int) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ConfigError(f"label.horizon: must be an integer >= 1, got {horizon!r}")
    return int(horizon)


def _named(y: pd.Series, name: str, horizon: int) -> pd.Series:
    if not isinstance(y.index, pd.MultiIndex):
        raise DataError("labels need a panel indexed by (timestamp, symbol)")
    return y.astype("float64").rename(name)
