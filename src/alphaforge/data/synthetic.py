"""Synthetic OHLCV panels with a known, planted cross-sectional signal.

- business-day bars; every draw comes from ``np.random.default_rng(seed)``: same seed, same panel;
- GARCH(1,1) volatility per symbol (alpha 0.05, beta 0.90) around long-run daily vols of about
  1.5% with small dispersion across symbols (log-sd 0.1), so ranks are driven by the signal and
  not by which symbol is the most volatile;
- OHLC bars: open = previous close times a small gap (0.1 sigma), high/low envelopes around
  max/min(open, close); volume positive and rising with |return| / sigma;
- the signal (short-term momentum on cross-sectional ranks), documented in :func:`synthetic_panel`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import ndtri

from alphaforge.errors import ConfigError

from .schema import validate_panel

# GARCH(1,1): sigma2[t] = omega + ALPHA * r[t-1]^2 + BETA * sigma2[t-1]
ALPHA, BETA = 0.05, 0.90
BASE_VOL, VOL_DISPERSION = 0.015, 0.1  # long-run daily vol; log-sd of vol levels across symbols
GAP_SCALE, RANGE_SCALE = 0.1, 0.5  # overnight gap and high/low excursion, in units of sigma


def planted_rho(strength: float) -> float:
    """Loading rho whose Gaussian rank IC ``(6/pi) asin(rho/2)`` equals ``strength``.

    Args:
        strength: Target Spearman rank IC, in (-1, 1).

    Returns:
        ``rho = 2 sin(pi * strength / 6)``.
    """
    return 2.0 * math.sin(math.pi * strength / 6.0)


def synthetic_panel(
    n_symbols: int = 20,
    n_bars: int = 600,
    seed: int = 0,
    strength: float = 0.1,
    start: str = "2015-01-02",
    gaps: bool = False,
) -> pd.DataFrame:
    """A deterministic OHLCV Panel with a planted, observable cross-sectional signal.

    The close-to-close log return of symbol ``i`` over bar ``t+1`` is::

        r[t+1, i] = sigma[t+1, i] * (rho * z[t, i] + sqrt(1 - rho^2) * eps[t+1, i]),  eps ~ N(0, 1)

    where ``z[t, i] = Phi^-1((rank_i(r[t]) - 0.5) / N)`` is the normal score of the
    cross-sectional rank (1 = lowest, N = ``n_symbols``) of the bar's own return ``r[t, i]``: a
    short-term momentum signal computable from closes up to ``t``. ``rho = 2 sin(pi * strength /
    6)`` (Gaussian relation ``rank_ic = (6/pi) asin(rho/2)``), so the expected per-timestamp
    Spearman rank IC between ``z[t]`` (equivalently ``r[t]``) and ``r[t+1]`` is ``strength``;
    the small vol dispersion moves it by about 1%. ``sigma`` follows GARCH(1,1). The first bar
    carries no signal (``r[0] = sigma * eps``).

    Args:
        n_symbols: Number of symbols N (>= 2), named ``S000``, ``S001``, ...
        n_bars: Bars per symbol T (>= 2), on business days from ``start``.
        seed: Seed of ``np.random.default_rng``; the panel is a pure function of the arguments.
        strength: Planted rank IC, in (-1, 1); 0 gives a panel with no signal.
        start: First business day.
        gaps: If True, drop a few random bars (about 2%) from a quarter of the symbols to make
            an unbalanced panel (for leakage tests). The remaining bars are identical to those
            of ``gaps=False``; returns across a dropped bar span two bars.

    Returns:
        A validated Panel (naive business-day timestamps) with ``attrs["planted_rank_ic"]``,
        ``attrs["planted_rho"]`` and a one-line ``attrs["signal"]``.

    Raises:
        ConfigError: out-of-range arguments.
    """
    if n_symbols < 2 or n_bars < 2:
        raise ConfigError(
            f"synthetic panel needs n_symbols >= 2 and n_bars >= 2; got "
            f"n_symbols={n_symbols}, n_bars={n_bars}"
        )
    if not -1.0 < strength < 1.0:
        raise ConfigError(f"synthetic strength is a rank IC in (-1, 1); got {strength}")
    rng = np.random.default_rng(seed)
    N, T = n_symbols, n_bars
    rho = planted_rho(strength)
    r, sigma = _planted_returns(rng, T, N, rho)
    frame = _long_frame(_ohlcv(rng, r, sigma), pd.bdate_range(start, periods=T))
    if gaps:
        frame = frame.loc[~_gap_mask(seed, T, N)]
    source = f"synthetic:n_symbols={N},n_bars={T},seed={seed},strength={strength},start={start}" + (
        ",gaps=true" if gaps else ""
    )
    panel = validate_panel(frame, source=source)
    panel.attrs.update(
        planted_rank_ic=float(strength),
        planted_rho=rho,
        signal="r[t+1] = sigma*(rho*z[t] + sqrt(1-rho^2)*eps), z[t] = normal score of the "
        "cross-sectional rank of r[t] (close-to-close log return): short-term momentum",
    )
    return panel


def _planted_returns(
    rng: np.random.Generator, T: int, N: int, rho: float
) -> tuple[np.ndarray, np.ndarray]:
    """Log returns with the planted rank signal and their GARCH(1,1) volatilities.

    Args:
        rng: The panel's generator; draws N long-run vols, then (T, N) innovations.
        T: Bars per symbol.
        N: Symbols.
        rho: Loading on the normal score of the previous bar's cross-sectional rank.

    Returns:
        ``(r, sigma)``, both (T, N): close-to-close log returns and their conditional vols.
    """
    scores = ndtri((np.arange(1, N + 1) - 0.5) / N)  # (N,) normal score by rank, lowest first
    vol = BASE_VOL * np.exp(VOL_DISPERSION * rng.standard_normal(N))  # (N,) long-run vol
    omega = vol**2 * (1.0 - ALPHA - BETA)
    eps = rng.standard_normal((T, N))
    r, sigma = np.empty((T, N)), np.empty((T, N))
    s2 = vol**2
    u = eps[0]
    for t in range(T):  # recursion over bars, vectorised over symbols
        if t > 0:
            s2 = omega + ALPHA * r[t - 1] ** 2 + BETA * s2
            z = scores[np.argsort(np.argsort(r[t - 1]))]  # (N,) normal score of r[t-1]'s rank
            u = rho * z + math.sqrt(1.0 - rho**2) * eps[t]
        sigma[t] = np.sqrt(s2)
        r[t] = sigma[t] * u
    return r, sigma


def _ohlcv(rng: np.random.Generator, r: np.ndarray, sigma: np.ndarray) -> dict[str, np.ndarray]:
    """OHLCV bars around the closes the returns imply.

    Args:
        rng: The panel's generator, after :func:`_planted_returns`.
        r: (T, N) close-to-close log returns.
        sigma: (T, N) conditional vols of those returns.

    Returns:
        ``{"open", "high", "low", "close", "volume"}``, each (T, N), in that order.
    """
    T, N = r.shape
    p0 = np.exp(rng.uniform(np.log(20.0), np.log(200.0), N))  # (N,) close before bar 0
    close = p0 * np.exp(np.cumsum(r, axis=0))  # (T, N)
    prev = np.vstack([p0, close[:-1]])
    open_ = prev * np.exp(GAP_SCALE * sigma * rng.standard_normal((T, N)))
    high = np.maximum(open_, close) * np.exp(
        RANGE_SCALE * sigma * np.abs(rng.standard_normal((T, N)))
    )
    low = np.minimum(open_, close) * np.exp(
        -RANGE_SCALE * sigma * np.abs(rng.standard_normal((T, N)))
    )
    base = 1e6 * np.exp(0.5 * rng.standard_normal(N))  # (N,) typical volume per symbol
    noise = 0.25 * rng.standard_normal((T, N))
    volume = np.maximum(1.0, np.round(base * np.exp(0.5 * np.abs(r / sigma) + noise)))
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def _long_frame(bars: dict[str, np.ndarray], dates: pd.DatetimeIndex) -> pd.DataFrame:
    """Long ``timestamp, symbol, <fields>`` frame of (T, N) arrays, symbols ``S000, S001, ...``.

    Args:
        bars: Field name -> (T, N) array.
        dates: (T,) timestamps of the rows.

    Returns:
        T * N rows, timestamp-major (all symbols of bar 0, then bar 1, ...).
    """
    T, N = len(dates), next(iter(bars.values())).shape[1]
    symbols = np.array([f"S{i:0{max(3, len(str(N - 1)))}d}" for i in range(N)], dtype=object)
    return pd.DataFrame(
        {
            "timestamp": np.repeat(dates.to_numpy(), N),
            "symbol": np.tile(symbols, T),
            **{k: v.ravel() for k, v in bars.items()},
        }
    )


def _gap_mask(seed: int, T: int, N: int) -> np.ndarray:
    """(T*N,) rows to drop, from a separate stream so kept bars equal the gap-free panel's."""
    rng = np.random.default_rng([seed, 1])
    mask = np.zeros((T, N), dtype=bool)
    k = max(1, T // 50)
    for i in rng.choice(N, size=max(1, N // 4), replace=False):  # a few symbols, not rows
        mask[
            rng.choice(np.arange(1, max(T - 1, 2)), size=min(k, max(T - 2, 1)), replace=False), i
        ] = True
    return mask.ravel()
