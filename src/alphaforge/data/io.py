"""Reading sources into Panels: files (CSV, gzipped CSV, Parquet), built-ins, synthetic specs.

``load_panel`` is the one entry point the rest of alphaforge uses::

    load_panel("prices.csv")                      # long table, any common column spelling
    load_panel("SPY.csv.gz")                      # no symbol column: the symbol is the file stem
    load_panel("builtin:us-stocks-5")             # a dataset shipped inside an installed wheel
    load_panel("synthetic:n_symbols=50,seed=3")   # a generated panel with a planted signal
    load_panel(frame)                             # a DataFrame (never modified)

Everything goes through :func:`~alphaforge.data.schema.validate_panel`; errors name the file,
symbol, 1-based data row (header excluded) and value.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from alphaforge.errors import ConfigError, DataError
from alphaforge.utils.io import atomic_write, check_symbol

from .schema import NA_TEXT, canonical_column, check_history, index_to_columns, validate_panel

logger = logging.getLogger(__name__)

# Bars needed when alphaforge.features cannot tell us its longest look-back (one trading year + 1).
FALLBACK_MIN_BARS = 253
_SUFFIXES: dict[str, str] = {
    ".csv.gz": "csv",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
REPAIR_COLUMNS = ("row", "symbol", "timestamp", "action", "reason")

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
        from .builtin import load_builtin  # lazy: builtin imports this module

        return load_builtin(source.removeprefix("builtin:"), min_bars=needed, repair=repair)
    if isinstance(source, str) and source.startswith("synthetic:"):
        from .synthetic import synthetic_panel

        panel = synthetic_panel(**parse_synthetic_spec(source))
        check_history(panel.index.get_level_values("symbol"), needed, source)
        return panel
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(
            f"cannot load a panel from {type(source).__name__}; expected a path, "
            "'builtin:<name>', 'synthetic:...' or a DataFrame"
        )
    path = Path(source)
    frame = index_to_columns(
        read_table(path)
    )  # a saved Panel keeps (timestamp, symbol) in the index
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
    return validate_panel(frame, source=str(path), min_bars=needed, repair=repair)


def resolve_min_bars(min_bars: int | Literal["auto"] | None) -> int | None:
    """Turn the ``min_bars`` argument of :func:`load_panel` into a bar count.

    Args:
        min_bars: ``"auto"``, a positive int, or ``None``.

    Returns:
        The number of bars each symbol needs, or ``None`` for no check. ``"auto"`` asks
        ``alphaforge.features.max_lookback()`` (+ 1) and falls back to 253 (one trading year
        + 1) while that function is not available.

    Raises:
        ConfigError: for any other value.
    """
    if min_bars is None:
        return None
    if isinstance(min_bars, str) and min_bars == "auto":
        try:
            from alphaforge.features import max_lookback
        except ImportError:
            logger.debug(
                "alphaforge.features.max_lookback unavailable; min_bars=%d", FALLBACK_MIN_BARS
            )
            return FALLBACK_MIN_BARS
        return int(max_lookback()) + 1
    if isinstance(min_bars, bool) or not isinstance(min_bars, int) or min_bars < 1:
        raise ConfigError(f"min_bars must be 'auto', a positive int or None; got {min_bars!r}")
    return min_bars


def file_kind(path: str | os.PathLike[str]) -> str:
    """``"csv"`` or ``"parquet"`` from the file name (case-insensitive).

    Args:
        path: File path.

    Returns:
        The reader to use.

    Raises:
        DataError: for any other extension.
    """
    name = Path(path).name.lower()
    for suffix, kind in _SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    raise DataError(
        f"unsupported file extension {''.join(Path(path).suffixes) or '(none)'!r}; "
        f"expected one of {', '.join(_SUFFIXES)}",
        path=str(path),
    )


def file_stem(path: str | os.PathLike[str]) -> str:
    """File name without its data extension: ``"data/SPY.csv.gz"`` -> ``"SPY"``.

    Args:
        path: File path with one of the supported extensions (any other is returned unchanged).

    Returns:
        The stem.
    """
    name = Path(path).name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV (optionally gzipped) or Parquet file as it is, with clear errors.

    CSV columns that map to ``timestamp`` or ``symbol`` (see
    :func:`~alphaforge.data.schema.canonical_column`) are read as text, so tickers such as
    ``"NA"`` or ``"007"`` survive; other columns use pandas' type inference, and a column with
    any unparseable cell stays text so validation can quote it. Row ``i`` of the result is data
    row ``i + 1`` of the file (header excluded).

    Args:
        path: ``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq`` file.

    Returns:
        The raw table (no renaming, no validation).

    Raises:
        DataError: file not found, not a file, unsupported extension, empty, no data rows, or
            unreadable (malformed CSV, bad gzip stream, not UTF-8, corrupt Parquet).
    """
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise DataError("file not found", path=where)
    if not path.is_file():
        raise DataError("not a file", path=where)
    kind = file_kind(path)
    if path.stat().st_size == 0:
        raise DataError("empty file (0 bytes)", path=where)
    try:
        frame = _read_csv(path) if kind == "csv" else pd.read_parquet(path)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError("empty file (no header and no data)", path=where) from None
    except pd.errors.ParserError as err:
        line = re.search(r"line (\d+)", str(err))  # file line; the header is line 1
        row = int(line.group(1)) - 1 if line else None
        raise DataError(f"unparseable CSV: {str(err).strip()}", path=where, row=row) from None
    except UnicodeDecodeError as err:
        raise DataError(f"not UTF-8 text: {err}", path=where) from None
    except (OSError, EOFError, zlib.error, ValueError) as err:
        # gzip.BadGzipFile is an OSError; pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"cannot read {kind} file: {str(err).strip()}", path=where) from None
    if len(frame) == 0:
        raise DataError(f"no data rows (columns {[str(c) for c in frame.columns]})", path=where)
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    header = pd.read_csv(path, nrows=0).columns
    text = [c for c in header if canonical_column(c) in ("timestamp", "symbol")]
    return pd.read_csv(
        path,
        dtype={c: str for c in text},
        keep_default_na=False,  # no NA text in the symbol column ("NA" is a ticker) ...
        na_values={c: list(NA_TEXT) for c in header if canonical_column(c) != "symbol"},
        low_memory=False,
    )


def write_repair_report(repairs: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """Write repair records (``panel.attrs["repairs"]``) to a CSV file, atomically.

    Args:
        repairs: Records with keys ``row, symbol, timestamp, action, reason``.
        path: Destination ``.csv``; its directory is created if missing.
    """
    frame = pd.DataFrame(list(repairs), columns=list(REPAIR_COLUMNS))
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        frame.to_csv(fh, index=False)


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
    from .synthetic import synthetic_panel

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
