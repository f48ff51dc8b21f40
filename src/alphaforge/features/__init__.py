"""Backward-looking features of a Panel: the ``FEATURES`` and ``ALPHA158`` catalogues.

Every feature value at bar t of a symbol is computed from that symbol's bars at or before t only
(the cross-sectional stage adds other symbols' values at the same t). Windows count the symbol's
own bars, as a per-symbol ``groupby(symbol).rolling(n)`` would. Families live one per module
(returns, volatility, momentum, oscillators, volume, calendar; alpha158.py holds Qlib's
Alpha158 catalogue); cross_section.py ranks and z-scores across symbols; pca.py fits PCA factors
per fold. ``_reference.py`` restates every feature naively in per-symbol pandas, and the tests
hold the fast path to it.

Speed comes from layout (see ``_core.PackedLayout``): each field is packed once into a (T, N)
array whose columns are symbols' own bar sequences, and every rolling statistic is a whole-array
numpy / scipy operation down the columns (``_rolling``). No Python loop runs over rows or symbols.

Catalogues (``build_features(..., catalogue=...)``, config ``features.catalogue``):
- ``default``: ``FEATURES``, this project's 100 features, family by family;
- ``alpha158``: ``ALPHA158``, Qlib's Alpha158 factors with Qlib's names (``alpha158.py`` says
  where and why it departs from Qlib: VWAP0, warm-up, degenerate windows);
- ``both``: the default features, then the Alpha158 ones.
Feature names are unique across catalogues, so an explicit ``names`` list may mix them. The
cross-sectional stage defaults to ``DEFAULT_CS_FEATURES`` among the features built: today's eight
columns for ``default`` and ``both``, none for ``alpha158`` alone (its factors are already ratios
comparable across symbols; ask for some with ``cs_features``). A one-symbol panel gets no
cross-sectional columns: a rank across one symbol is a constant 0.5 and its z-score is NaN, so
``build_features`` leaves them out and logs a WARNING naming them.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphaforge.errors import ConfigError, DataError
from alphaforge.features import (
    alpha158,
    calendar,
    momentum,
    oscillators,
    returns,
    volatility,
    volume,
)
from alphaforge.features._core import Context, Feature, FeatureSpec, PackedLayout
from alphaforge.features.cross_section import DEFAULT_CS_FEATURES, CrossSection

__all__ = [
    "ALPHA158",
    "CATALOGUES",
    "FEATURES",
    "FeatureSpec",
    "DEFAULT_CS_FEATURES",
    "PCAFactors",
    "build_features",
    "catalogue_features",
    "feature_names",
    "max_lookback",
]

logger = logging.getLogger(__name__)

_FAMILIES = (returns, volatility, momentum, oscillators, volume, calendar)
_DEFAULT = [f for fam in _FAMILIES for f in fam.catalogue()]
_ALPHA158 = alpha158.catalogue()
#: every feature of every catalogue, by name (names are unique across catalogues)
_CATALOGUE: dict[str, Feature] = {f.spec.name: f for f in _DEFAULT + _ALPHA158}
assert len(_CATALOGUE) == len(_DEFAULT) + len(_ALPHA158), "a name is in two catalogues"

#: The default catalogue: name -> FeatureSpec, in catalogue order (family by family).
FEATURES: dict[str, FeatureSpec] = {f.spec.name: f.spec for f in _DEFAULT}
#: Qlib's Alpha158 factors: name -> FeatureSpec, in Qlib's order (see ``alpha158``).
ALPHA158: dict[str, FeatureSpec] = {f.spec.name: f.spec for f in _ALPHA158}
#: Valid values of ``catalogue``: each catalogue, and ``both`` (default first).
CATALOGUES: tuple[str, ...] = ("default", "alpha158", "both")


def __getattr__(name: str) -> Any:
    # PCAFactors imports scikit-learn: load it on first use only
    if name == "PCAFactors":
        return importlib.import_module("alphaforge.features.pca").PCAFactors
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def catalogue_features(catalogue: str = "default") -> list[str]:
    """Feature names of a catalogue, in catalogue order.

    Args:
        catalogue: ``"default"`` (``FEATURES``), ``"alpha158"`` (``ALPHA158``) or ``"both"``
            (the default features, then the Alpha158 ones).

    Raises:
        ConfigError: On an unknown catalogue, naming the valid ones.
    """
    if catalogue == "default":
        return list(FEATURES)
    if catalogue == "alpha158":
        return list(ALPHA158)
    if catalogue == "both":
        return list(FEATURES) + list(ALPHA158)
    raise ConfigError(
        f"unknown feature catalogue {catalogue!r}; valid catalogues: {', '.join(CATALOGUES)}"
    )


def _resolve(
    names: Iterable[str] | None, what: str = "feature", catalogue: str = "default"
) -> list[str]:
    """Names to build: the catalogue's when None, else these (from any catalogue), checked."""
    default = catalogue_features(catalogue)  # validates the catalogue either way
    if names is None:
        return default
    if isinstance(names, str):
        names = [names]
    names = list(dict.fromkeys(names))  # keep order, drop repeats
    unknown = [n for n in names if n not in _CATALOGUE]
    if unknown:
        raise ConfigError(
            f"unknown {what} name(s) {unknown}; valid names: the default catalogue "
            f"({', '.join(FEATURES)}) and the alpha158 catalogue ({', '.join(ALPHA158)})"
        )
    return names


def feature_names(
    names: Sequence[str] | None = None,
    *,
    catalogue: str = "default",
    cross_section: bool = True,
    cs_features: Sequence[str] | None = None,
) -> list[str]:
    """Column names ``build_features`` returns for these arguments, in order.

    For a panel of one symbol ``build_features`` leaves out the ``cs_*`` columns listed here.
    """
    base = _resolve(names, catalogue=catalogue)
    cs = _cs_names(base, cross_section, cs_features)
    return base + [f"cs_rank_{n}" for n in cs] + [f"cs_z_{n}" for n in cs]


def _cs_names(base: list[str], cross_section: bool, cs_features: Sequence[str] | None) -> list[str]:
    if not cross_section:
        return []
    if cs_features is None:  # defaults that were asked for
        return [n for n in DEFAULT_CS_FEATURES if n in base]
    return _resolve(cs_features, "cross-sectional feature")


def max_lookback(names: Iterable[str] | None = None, *, catalogue: str = "default") -> int:
    """Longest lookback, in bars, among these features (the catalogue's when None).

    A symbol needs at least this many bars before every feature is defined; the data layer uses
    it to reject too-short histories.

    Args:
        names: Feature names, from any catalogue; None: every feature of ``catalogue``.
        catalogue: ``"default"``, ``"alpha158"`` or ``"both"`` (see ``catalogue_features``).

    Raises:
        ConfigError: If a name is in no catalogue, or on an unknown catalogue.
    """
    resolved = _resolve(names, catalogue=catalogue)
    return max((_CATALOGUE[n].spec.lookback for n in resolved), default=1)


def _check_panel(panel: pd.DataFrame, fields: set[str]) -> None:
    """Raise DataError unless panel looks like a Panel (see alphaforge.data) with these fields."""
    if not isinstance(panel, pd.DataFrame):
        raise DataError(f"expected a Panel DataFrame, got {type(panel).__name__}")
    index = panel.index
    if not isinstance(index, pd.MultiIndex) or list(index.names) != ["timestamp", "symbol"]:
        got = list(index.names) if isinstance(index, pd.MultiIndex) else type(index).__name__
        raise DataError(
            f"panel index must be a MultiIndex named ['timestamp', 'symbol'], got {got}"
        )
    missing = sorted(fields - set(panel.columns) - {"volume"})  # volume may be absent: NaN
    if missing:
        raise DataError(f"panel lacks column(s) {missing} needed by the requested features")
    if not len(panel):
        return
    t, s = index.codes[0].astype(np.int64), index.codes[1].astype(np.int64)
    if not (index.levels[0].is_monotonic_increasing and index.levels[1].is_monotonic_increasing):
        # codes compare like values only on sorted levels
        index = index.remove_unused_levels()
        t = pd.factorize(index.get_level_values(0), sort=True)[0]
        s = pd.factorize(index.get_level_values(1), sort=True)[0]
    dt, ds = np.diff(t), np.diff(s)
    bad = np.flatnonzero((dt < 0) | ((dt == 0) & (ds <= 0)))
    if bad.size:
        row = int(bad[0]) + 1
        raise DataError(
            "panel must be sorted by (timestamp, symbol) without duplicate bars",
            row=row + 1,
            timestamp=index[row][0],
            symbol=str(index[row][1]),
        )


def _destinations(
    buf: np.ndarray, base: list[str], cs: list[str]
) -> tuple[dict[str, list[np.ndarray]], dict[str, np.ndarray]]:
    """Where each computed feature is written, and the float64 inputs of the cross-section.

    Returns:
        (name -> long (n_rows,) arrays to fill: its row of ``buf`` and/or a float64 copy for the
        cross-sectional stage; cross-sectional feature -> its float64 long values).
    """
    outputs: dict[str, list[np.ndarray]] = {n: [] for n in dict.fromkeys(base + cs)}
    for i, n in enumerate(base):
        outputs[n].append(buf[i])
    cs_in: dict[str, np.ndarray] = {}
    for n in cs:
        if n in base and buf.dtype == np.float64:
            cs_in[n] = buf[base.index(n)]  # reuse the output row
        else:  # not an output column, or output rounded to float32: keep float64 values
            cs_in[n] = np.empty(buf.shape[1])
            outputs[n].append(cs_in[n])
    return outputs, cs_in


def _skip_cross_section(cs: list[str], symbol: str) -> list[str]:
    """Log the cross-sectional columns a one-symbol panel does not get; no feature is left."""
    dropped = [f"cs_rank_{n}" for n in cs] + [f"cs_z_{n}" for n in cs]
    logger.warning(
        "build_features: the panel has one symbol (%r): left out its %d cross-sectional "
        "columns %s (a rank across one symbol is constant, its z-score NaN); pass "
        "cross_section=False to build without them",
        symbol,
        len(dropped),
        ", ".join(dropped),
    )
    return []


def build_features(
    panel: pd.DataFrame,
    names: Sequence[str] | None = None,
    *,
    catalogue: str = "default",
    cross_section: bool = True,
    cs_features: Sequence[str] | None = None,
    dtype: npt.DTypeLike = np.float64,
) -> pd.DataFrame:
    """Compute features for every bar of a Panel, looking only backward.

    Args:
        panel: Long frame indexed by ``(timestamp, symbol)``, sorted, float64 columns ``open,
            high, low, close, volume``. Unbalanced panels (late starts, early ends, missing bars)
            are fine: windows count each symbol's own bars. Volume may be NaN (close-only panels:
            volume features come out NaN) or 0.
        names: Features to build, from any catalogue (``FEATURES``, ``ALPHA158``); None = all
            of ``catalogue``, in catalogue order.
        catalogue: ``"default"``, ``"alpha158"`` or ``"both"``: the features built when
            ``names`` is None (see ``catalogue_features``).
        cross_section: Add the cross-sectional stage: ``cs_rank_<f>`` (percentile rank in
            [0, 1]) and ``cs_z_<f>`` (z-score) across the symbols present at each timestamp.
            Left out, with a logged WARNING naming the columns, when the panel has one symbol
            (its ranks would be constant and its z-scores NaN).
        cs_features: Features that get the cross-sectional stage; None = those of
            ``DEFAULT_CS_FEATURES`` among the features built (none for ``alpha158`` alone). A
            feature listed here but not in ``names`` is computed for the stage without its own
            column.
        dtype: Output dtype; ``np.float32`` halves the output's memory (values are computed in
            float64 and rounded once at the end).

    Returns:
        (n_rows, n_features) DataFrame with exactly ``panel.index``: base features in the order
        of ``names``, then all ``cs_rank_*``, then all ``cs_z_*`` columns. NaN in each symbol's
        first ``lookback - 1`` bars (warm-up) and where a value is undefined (e.g. a flat range).

    Raises:
        ConfigError: On an unknown feature name or catalogue.
        DataError: If the panel is not a sorted ``(timestamp, symbol)`` frame with the needed
            columns.
    """
    started = time.perf_counter()
    base = _resolve(names, catalogue=catalogue)
    cs = _cs_names(base, cross_section, cs_features)
    needed = base + [n for n in cs if n not in base]
    fields = {f for n in needed for f in _CATALOGUE[n].spec.fields}
    _check_panel(panel, fields)

    layout = PackedLayout(panel.index)
    if cs and layout.n_symbols == 1:
        cs = _skip_cross_section(cs, str(panel.index.get_level_values("symbol")[0]))
        needed = base
        fields = {f for n in needed for f in _CATALOGUE[n].spec.fields}
    columns_in = {f: panel[f].to_numpy(dtype=np.float64) for f in fields if f in panel.columns}
    columns = base + [f"cs_rank_{n}" for n in cs] + [f"cs_z_{n}" for n in cs]
    # (F, n_rows) C-order: each feature is one contiguous row, and buf.T is the frame's block
    buf = np.empty((len(columns), layout.n_rows), dtype=dtype)
    outputs, cs_in = _destinations(buf, base, cs)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for block in layout.blocks:  # a loop over symbol blocks of ~1 MB each
            ctx = Context(layout, block, columns_in)
            for name in needed:
                values = _CATALOGUE[name].compute(ctx)  # (T_b, n_b)
                for out in outputs[name]:
                    layout.unpack(block, values, out)
        if cs:
            stage = CrossSection(layout)
            for i, name in enumerate(cs):
                rank_row, z_row = len(base) + i, len(base) + len(cs) + i
                stage.rank_and_z(cs_in[name], buf[rank_row], buf[z_row])
    out = pd.DataFrame(buf.T, index=panel.index, columns=columns, copy=False)
    elapsed = time.perf_counter() - started
    logger.debug(
        "build_features: %d rows x %d columns in %.2fs (%.0f rows/s)",
        layout.n_rows,
        len(columns),
        elapsed,
        layout.n_rows / max(elapsed, 1e-9),
    )
    return out
