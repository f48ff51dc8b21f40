"""The one entry point from a source to a Panel: files, built-ins, synthetic specs and frames.

``load_panel`` is what the rest of alphaforge uses::

    load_panel("prices.csv")                      # long table, any common column spelling
    load_panel("SPY.csv.gz")                      # no symbol column: the symbol is the file stem
    load_panel("builtin:us-stocks-5")             # a dataset shipped inside an installed wheel
    load_panel("synthetic:n_symbols=50,seed=3")   # a generated panel with a planted signal
    load_panel(frame)                             # a DataFrame (never modified)

Everything goes through :func:`~alphaforge.data.schema.validate_panel`; errors name the file,
symbol, 1-based data row (header excluded) and value. This module sits above ``io``,
``builtin`` and ``synthetic``; none of them imports it.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from alphaforge.errors import ConfigError, DataError
from alphaforge.features import max_lookback
from alphaforge.utils.io import check_symbol

from .builtin import load_builtin
from .io import file_stem, read_table
from .schema import canonical_column, check_history, index_to_columns, validate_panel
from .synthetic import synthetic_panel

logger = logging.getLogger(__name__)

Source = str | os.PathLike[str] | pd.DataFrame


def load_panel(
    source: Source,
    *,
    min_bars: int | Literal["auto"] | None = "auto",
    repair: bool = False,
) -> pd.DataFrame:
    """Load and validate a Panel from a file, a built-in dataset, a synthetic spec or a frame.

    Args:
        source: Path to ``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq``; ``"builtin:<name>"`` (see
            :func:`~alphaforge.data.builtin_datasets`); ``"synthetic:"`` or
            ``"synthetic:n_symbols=20,n_bars=600,seed=0,strength=0.1"`` (keywords of
            :func:`~alphaforge.data.synthetic_panel`); or a long-format DataFrame (not modified).
            A file without a symbol column is one asset named after the file stem.
        min_bars: Minimum bars per symbol. ``"auto"``: the longest feature look-back + 1
            (``alphaforge.features.max_lookback() + 1``); an int: that; ``None``: no check.
        repair: Drop (and record in ``attrs["repairs"]``) duplicate rows, rows with impossible
            values and off-grid bars instead of refusing them; see
            :func:`~alphaforge.data.validate_panel`. Nothing is ever filled.

    Returns:
        A validated Panel: index ``(timestamp, symbol)``, float64 OHLCV columns, ``attrs`` with
        ``source``, ``freq``, ``close_only`` (and ``repairs`` when ``repair=True``).

    Raises:
        DataError: file not found, empty, unsupported extension, unreadable, or any defect
            :func:`~alphaforge.data.validate_panel` detects.
        ConfigError: ``min_bars`` is not ``"auto"``, a positive int or ``None``.
    """
    needed = resolve_min_bars(min_bars)
    if isinstance(source, pd.DataFrame):
        return validate_panel(source, min_bars=needed, repair=repair)
    if isinstance(source, str) and source.startswith("builtin:"):
        return load_builtin(source.removeprefix("builtin:"), min_bars=needed, repair=repair)
    if isinstance(source, str) and source.startswith("synthetic:"):
        panel = synthetic_panel(**parse_synthetic_spec(source))
        check_history(panel.index.get_level_values("symbol"), needed, source)
        return panel
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(
            f"cannot load a panel from {type(source).__name__}; expected a path, "
            "'builtin:<name>', 'synthetic:...' or a DataFrame"
        )
    return _load_file(Path(source), min_bars=needed, repair=repair)


def _load_file(path: Path, *, min_bars: int | None, repair: bool) -> pd.DataFrame:
    """Read one file and validate it; a file without a symbol column is named after its stem.

    Args:
        path: ``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq`` file.
        min_bars: Bars needed per symbol (already resolved; ``None``: no check).
        repair: Passed to :func:`~alphaforge.data.validate_panel`.

    Returns:
        The validated Panel.

    Raises:
        DataError: unreadable file, unusable file stem, or invalid data.
    """
    # a saved Panel keeps (timestamp, symbol) in the index
    frame = index_to_columns(read_table(path))
    if not any(canonical_column(c) == "symbol" for c in frame.columns):
        symbol = file_stem(path)
        try:
            check_symbol(symbol)
        except DataError as err:
            raise DataError(
                f"no symbol column, and the file stem is not a usable symbol: {err.message}",
                path=str(path),
            ) from None
        logger.info("%s: no symbol column; using the file stem %r", path, symbol)
        frame = frame.assign(symbol=symbol)
    return validate_panel(frame, source=str(path), min_bars=min_bars, repair=repair)


def resolve_min_bars(min_bars: int | Literal["auto"] | None) -> int | None:
    """Turn the ``min_bars`` argument of :func:`load_panel` into a bar count.

    Args:
        min_bars: ``"auto"``, a positive int, or ``None``.

    Returns:
        The number of bars each symbol needs, or ``None`` for no check. ``"auto"`` is
        ``alphaforge.features.max_lookback() + 1``.

    Raises:
        ConfigError: for any other value.
    """
    if min_bars is None:
        return None
    if isinstance(min_bars, str) and min_bars == "auto":
        return int(max_lookback()) + 1
    if isinstance(min_bars, bool) or not isinstance(min_bars, int) or min_bars < 1:
        raise ConfigError(f"min_bars must be 'auto', a positive int or None; got {min_bars!r}")
    return min_bars


def parse_synthetic_spec(spec: str) -> dict[str, Any]:
    """Keyword arguments for :func:`~alphaforge.data.synthetic_panel` from a source string.

    Args:
        spec: ``"synthetic:"`` or ``"synthetic:key=value,key=value"``; values are converted to
            the type of the keyword's default (``gaps=true`` for booleans).

    Returns:
        The keyword arguments.

    Raises:
        DataError: unknown key, malformed item or a value of the wrong type.
    """
    params = inspect.signature(synthetic_panel).parameters
    out: dict[str, Any] = {}
    body = spec.removeprefix("synthetic:").strip()
    for item in filter(None, (s.strip() for s in body.split(","))):
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep or key not in params:
            raise DataError(
                f"bad synthetic option {item!r}; expected key=value with key in "
                f"{', '.join(params)}",
                path=spec,
            )
        default = params[key].default
        try:
            if isinstance(default, bool):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                out[key] = value.lower() in ("true", "1")
            else:
                out[key] = type(default)(value)
        except ValueError:
            raise DataError(
                f"synthetic option {key}={value!r} is not a valid {type(default).__name__}",
                path=spec,
            ) from None
    return out
