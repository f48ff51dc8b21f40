"""File formats: reading CSV (optionally gzipped) and Parquet tables, listing the shards of a
partitioned dataset, writing repair reports.

:func:`read_table` reads a file as it is, with errors that name the file and the 1-based data
row (header excluded); turning the table into a Panel is the job of
:func:`~alphaforge.data.load_panel` (in ``loader``) and
:func:`~alphaforge.data.schema.validate_panel`.

A *partitioned dataset* is a directory (or a glob) of data files, "shards": plain files
(``part-0.parquet``, ``AAPL.parquet``) or hive-style folders (``symbol=AAPL/part-0.parquet``,
``date=2024-01-02/bars.parquet``). :func:`list_shards` finds them, in a stable order, with the
``key=value`` pairs of their folders; hidden entries and those starting with ``_`` (``_SUCCESS``,
``_metadata``, manifests) are skipped, as Spark, pyarrow and Dask do.
"""

from __future__ import annotations

import glob
import os
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

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
_GLOB_MAGIC = re.compile(r"[*?[]")


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
        repairs: Records with keys ``row, symbol, timestamp, action, reason`` (and ``file``, the
            shard a record's row belongs to, for a partitioned dataset: then a last column).
        path: Destination ``.csv``; its directory is created if missing.
    """
    repairs = list(repairs)
    columns = [*REPAIR_COLUMNS, *(["file"] if any("file" in r for r in repairs) else [])]
    frame = pd.DataFrame(repairs, columns=columns)
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        frame.to_csv(fh, index=False)


# ----------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Shard:
    """One file of a partitioned dataset.

    Attributes:
        path: The file.
        keys: ``key=value`` pairs of the hive-style folders between the dataset root and the
            file (values URL-decoded, as pyarrow writes them), e.g. ``{"symbol": "BRK.B"}``.
    """

    path: Path
    keys: dict[str, str] = field(default_factory=dict)


def is_dataset(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` names a partitioned dataset: an existing directory, or a glob pattern.

    Args:
        source: A path or a pattern such as ``"bars/*.parquet"`` or ``"bars/**/*.parquet"``.
    """
    return Path(source).is_dir() or bool(_GLOB_MAGIC.search(os.fspath(source)))


def list_shards(source: str | os.PathLike[str]) -> list[Shard]:
    """The data files of a directory (searched recursively) or of a glob pattern, sorted by path.

    Args:
        source: Directory, or glob pattern (``**`` matches folders at any depth).

    Returns:
        One :class:`Shard` per ``.parquet``, ``.pq``, ``.csv`` or ``.csv.gz`` file; hive keys are
        read from the folders below the directory (for a pattern: below its last folder without
        wildcards).

    Raises:
        DataError: no such directory, or no data file in it / matching the pattern.
    """
    text = os.fspath(source)
    if _GLOB_MAGIC.search(text):
        parts = Path(text).parts
        fixed = next(i for i, part in enumerate(parts) if _GLOB_MAGIC.search(part))
        root = Path(*parts[:fixed]) if fixed else Path(".")
        found = [Path(p) for p in glob.glob(text, recursive=True)]
    elif Path(text).is_dir():
        root = Path(text)
        found = [p for p in root.rglob("*") if not _skipped(p.relative_to(root))]
    else:
        raise DataError("no such directory or file pattern", path=text)
    files = sorted(p for p in found if p.is_file() and _is_data_file(p))
    if not files:
        raise DataError(
            f"no data files ({', '.join(_SUFFIXES)}) in this partitioned dataset", path=text
        )
    return [Shard(p, _hive_keys(p, root)) for p in files]


def _skipped(relative: Path) -> bool:
    """Hidden or underscore entries (and everything below them) are not data."""
    return any(part.startswith((".", "_")) for part in relative.parts)


def _is_data_file(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in _SUFFIXES)


def _hive_keys(path: Path, root: Path) -> dict[str, str]:
    try:
        folders = path.parent.relative_to(root).parts
    except ValueError:  # a pattern such as "../x/*.parquet": no folder below the root
        folders = ()
    keys = {}
    for part in folders:
        key, sep, value = part.partition("=")
        if sep and key:
            keys[key] = unquote(value)
    return keys
