"""Each symbol's labelled bars, cut into walk-forward validation folds and a held-out test window.

For each symbol the labelled bars are cut, oldest to newest, into::

    ... [fit][h][stop][h][val 1] ... [val k][h][test]

A trial fits on the bars before a window's early-stopping bars (``stop``), early-stops on those
and is scored on the window; ``test`` is never seen by the search and is scored once, for the
study's best params. ``h`` (the label horizon) purges the bars whose labels would look into the
next range.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.data import load_panel
from alphaforge.errors import ConfigError, DataError
from alphaforge.features import build_features
from alphaforge.labels import LabelSpec, make_label
from alphaforge.utils.io import check_symbol

__all__ = ["OHLCV", "SymbolData", "Window", "cut_windows", "data_hash", "prepare"]

OHLCV = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Window:
    """One fit-and-score cut: row ranges into :class:`SymbolData`'s ``X`` / ``y``.

    ``fit = [0, fit_end)`` trains, ``stop = [stop_start, stop_end)`` early-stops (and feeds the
    pruner), ``score = [score_start, score_end)`` is scored. Consecutive ranges are separated by
    ``horizon`` purged bars, so no label of one range looks into the next.
    """

    fit_end: int
    stop_start: int
    stop_end: int
    score_start: int
    score_end: int


@dataclass(frozen=True)
class SymbolData:
    """One symbol's features and label (time-ordered) with its validation folds and test window.

    Attributes:
        X: The symbol's labelled feature rows, oldest first.
        y: Their labels.
        folds: Validation folds, oldest first; a trial's score is the mean over them.
        test: The held-out window, scored once for the study's best params.
        data_hash: :func:`data_hash` of the symbol's bars.
        label: What ``y`` is (kind, horizon, price), passed to every ``fit``.
    """

    X: pd.DataFrame
    y: pd.Series
    folds: tuple[Window, ...]
    test: Window
    data_hash: str
    label: LabelSpec

    def rows(self, start: int, end: int) -> tuple[pd.DataFrame, pd.Series]:
        """``X`` and ``y`` rows ``[start, end)``."""
        return self.X.iloc[start:end], self.y.iloc[start:end]


def data_hash(panel: pd.DataFrame, symbol: str) -> str:
    """sha256 of one symbol's timestamps and float64 OHLCV bytes (changes when any bar does)."""
    rows = panel.xs(symbol, level="symbol")
    h = hashlib.sha256(rows.index.to_numpy().astype("datetime64[ns]").tobytes())
    h.update(np.ascontiguousarray(rows[list(OHLCV)].to_numpy(np.float64)).tobytes())
    return h.hexdigest()


def _window(score_start: int, score_end: int, stop: int, horizon: int) -> Window:
    stop_end = score_start - horizon
    stop_start = stop_end - stop
    return Window(stop_start - horizon, stop_start, stop_end, score_start, score_end)


def cut_windows(
    n: int, *, val: int, test: int, folds: int, stop: int, horizon: int, min_train: int = 50
) -> tuple[tuple[Window, ...], Window]:
    """Cut ``n`` time-ordered labelled rows into validation folds and a test window::

        ... [fit][h][stop][h][val 1] ... [val k][h][test]

    The ``folds`` validation windows of ``val`` rows are contiguous and end ``horizon`` rows
    before the last ``test`` rows. Each window (validation or test) is scored by a model fitted
    on every row before it except the ``stop`` rows just before it (early stopping) and the
    purges.

    Args:
        n: Labelled rows of one symbol.
        val: Rows per validation window.
        test: Rows of the test window.
        folds: Validation windows.
        stop: Early-stopping rows before each scored window.
        horizon: Purge width, rows (the label horizon).
        min_train: Fewest rows the first fold may fit on.

    Returns:
        ``(folds, test)``: the validation windows, oldest first, and the test window.

    Raises:
        ConfigError: Non-positive lengths.
        DataError: Fewer than ``min_train`` rows left to fit the first fold.
    """
    if val < 1 or test < 1 or folds < 1 or stop < 1:
        raise ConfigError(
            f"val, test, folds and stop must be >= 1, got val={val}, "
            f"test={test}, folds={folds}, stop={stop}"
        )
    test_start = n - test
    val_end = test_start - horizon
    starts = [val_end - (folds - i) * val for i in range(folds)]
    fold_windows = tuple(_window(a, a + val, stop, horizon) for a in starts)
    if fold_windows[0].fit_end < min_train:
        need = n - fold_windows[0].fit_end + min_train
        raise DataError(
            f"{n} labelled bars, need at least {need} (test {test}, {folds} x val "
            f"{val}, early-stopping {stop}, purges of {horizon}, {min_train} train)"
        )
    return fold_windows, _window(test_start, n, stop, horizon)


def prepare(
    data: Any,
    symbols: Sequence[str] | None,
    *,
    label: str,
    horizon: int,
    features: Sequence[str] | None,
    val: int,
    test: int,
    folds: int = 1,
    stop: int | None = None,
) -> dict[str, SymbolData]:
    """Load the panel, build features on the whole panel, then cut each symbol's bars.

    Features are built on the full panel so cross-sectional columns exist (each looks only
    backward), then filtered to the symbol. Only bars with a known label are used.

    Args:
        data: Anything :func:`~alphaforge.data.load_panel` accepts.
        symbols: Symbols to tune; None = all in the panel.
        label: Label kind (a key of :data:`~alphaforge.labels.LABELS`).
        horizon: Label horizon, bars ahead; also the purge width.
        features: Feature names; None = the whole catalogue.
        val: Validation window, bars (see :func:`cut_windows`).
        test: Test window, bars.
        folds: Validation windows.
        stop: Early-stopping bars; None = ``val``.

    Returns:
        ``{symbol: SymbolData}`` in the order of ``symbols``.

    Raises:
        DataError: Unsafe symbol name, symbol not in the panel, or too few bars.
        ConfigError: Bad window lengths, label or feature names.
    """
    stop = val if stop is None else stop
    cut_windows(10**9, val=val, test=test, folds=folds, stop=stop, horizon=horizon)  # lengths
    panel = load_panel(data)
    present = list(dict.fromkeys(panel.index.get_level_values("symbol")))
    chosen = present if not symbols else list(dict.fromkeys(symbols))
    for s in chosen:
        check_symbol(s)
        if s not in present:
            raise DataError(f"symbol {s!r} is not in the data; present: {', '.join(present)}")
    X = build_features(panel, features)
    y = make_label(panel, label, horizon)
    spec = LabelSpec(label, horizon)
    out = {}
    for s in chosen:
        mask = (X.index.get_level_values("symbol") == s) & y.notna().to_numpy()
        try:
            fold_windows, test_window = cut_windows(
                int(mask.sum()), val=val, test=test, folds=folds, stop=stop, horizon=horizon
            )
        except DataError as exc:
            raise DataError(f"symbol {s!r}: {exc}") from None
        out[s] = SymbolData(X[mask], y[mask], fold_windows, test_window, data_hash(panel, s), spec)
    return out
