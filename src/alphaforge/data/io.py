"""File formats: reading CSV (optionally gzipped) and Parquet tables, writing repair reports.

:func:`read_table` reads a file as it is, with errors that name the file and the 1-based data
row (header excluded); turning the table into a Panel is the job of
:func:`~alphaforge.data.load_panel` (in ``loader``) and
:func:`~alphaforge.data.schema.validate_panel`.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from alphaforge.errors import DataError
from alphaforge.utils.io import atomic_write

from .schema import NA_TEXT, canonical_column

_SUFFIXES: dict[str, str] = {
    ".csv.gz": "csv",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
REPAIR_COLUMNS = ("row", "symbol", "timestamp", "action", "reason")


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
    """Read a CSV with symbol and timestamp columns as text and NA markers only elsewhere."""
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
