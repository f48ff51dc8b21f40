"""The Panel contract: column mapping, validation, repairs and a short description.

A *Panel* is the frame every other module exchanges:

- a ``pd.DataFrame`` with a MultiIndex ``(timestamp, symbol)``, sorted lexicographically;
- ``timestamp`` is ``datetime64[ns]`` (tz-naive) or ``datetime64[ns, UTC]`` (the source was
  tz-aware; every offset is converted to UTC); ``symbol`` holds Python ``str`` values;
- float64 columns ``open, high, low, close, volume`` and, when the source has it, ``adj_close``;
- ``attrs``: ``source`` (path, ``builtin:<name>`` or ``synthetic:...``), ``freq`` (modal bar
  spacing over all symbols, ``pd.Timedelta``), ``close_only`` (``open``/``high``/``low`` are copies
  of ``close`` and ``volume`` is all NaN) and, only when validated with ``repair=True``,
  ``repairs`` (one dict per dropped source row).

:func:`validate_panel` turns any long table into a Panel or raises :class:`DataError` naming the
file, symbol, 1-based source row and offending value. Rows are always sorted (never a defect);
nothing is ever filled.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from alphaforge.errors import DataError
from alphaforge.utils.io import check_symbol

logger = logging.getLogger(__name__)

INDEX_NAMES: tuple[str, str] = ("timestamp", "symbol")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")
OPTIONAL_COLUMNS: tuple[str, ...] = ("adj_close",)
# Loaders that reshape or pre-filter a file put the file's 1-based data row numbers in this
# column so that errors and repair records still point at the right line of the source.
SOURCE_ROW = "_source_row"
DATAFRAME_SOURCE = "<DataFrame>"
RTOL = 1e-9  # relative slack for the OHLC range checks: float rounding in real data is not a defect
# Text that means "no value" in a numeric or date cell (pandas' defaults, written out so that the
# symbol column can be read without them: "NA" is a real ticker).
NA_TEXT: tuple[str, ...] = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)
_NA_LOWER = frozenset(t.lower() for t in NA_TEXT)

# normalised spelling (lower case, no spaces/underscores/hyphens) -> canonical column
_ALIASES: dict[str, str] = {
    **dict.fromkeys(("date", "datetime", "time", "timestamp"), "timestamp"),
    **dict.fromkeys(("ticker", "name", "symbol", "instrument"), "symbol"),
    **{c: c for c in COLUMNS},
    "adjclose": "adj_close",
}
# a clock time followed by an explicit UTC offset: "14:45:00+01:00", "14:45Z", "14:45:00.5-0500"
_TZ_AWARE_TEXT = re.compile(r":\d{2}(?:\.\d+)?\s*(?:Z|[+-]\d{2}:?\d{2})$")
_OWN_ATTRS = ("source", "freq", "close_only", "repairs")


def canonical_column(name: object) -> str | None:
    """Canonical panel column for a source column name, or ``None`` if it is not one we read.

    Matching ignores case, spaces, underscores and hyphens: ``"Adj Close"``, ``"adj_close"`` and
    ``"AdjClose"`` all give ``"adj_close"``; ``Date``/``Datetime``/``Time`` give ``"timestamp"``;
    ``Ticker``/``Name``/``Instrument`` give ``"symbol"``.

    Args:
        name: Column label as found in the source.

    Returns:
        One of ``timestamp, symbol, open, high, low, close, volume, adj_close`` or ``None``.
    """
    return _ALIASES.get(re.sub(r"[\s_\-]+", "", str(name).strip().lower()))


def map_columns(frame: pd.DataFrame, *, source: str | None = None) -> pd.DataFrame:
    """Rename recognised columns to their canonical names and drop the others.

    Args:
        frame: Long table as read from a source. Not modified.
        source: Where it came from, for error messages.

    Returns:
        A new frame holding only the canonical columns found (plus ``_source_row`` if present).

    Raises:
        DataError: if two source columns map to the same canonical column (e.g. ``Date`` and
            ``Time``).
    """
    chosen: dict[str, object] = {}
    for col in frame.columns:  # loop over column labels, not data
        canon = None if col == SOURCE_ROW else canonical_column(col)
        if canon is None:
            continue
        if canon in chosen:
            raise DataError(
                f"columns {chosen[canon]!r} and {col!r} both map to {canon!r}; keep only one",
                path=source,
            )
        chosen[canon] = col
    keep = [*chosen.values(), *([SOURCE_ROW] if SOURCE_ROW in frame.columns else [])]
    ignored = [c for c in frame.columns if c not in keep]
    if ignored:
        logger.debug("%s: ignoring columns %s", source, ignored)
    return frame.loc[:, keep].rename(columns={v: k for k, v in chosen.items()})


def validate_panel(
    df: pd.DataFrame,
    *,
    source: str | None = None,
    min_bars: int | None = None,
    repair: bool = False,
) -> pd.DataFrame:
    """Check a long OHLCV table and return it as a canonical, sorted Panel.

    Accepts a long table (columns in any common spelling, see :func:`canonical_column`), or a
    frame whose index levels are named like ``timestamp``/``symbol`` (e.g. an existing Panel). A
    table with ``close`` but no ``open``/``high``/``low``/``volume`` becomes a *close-only* panel:
    ``open = high = low = close`` and ``volume`` is NaN. Row numbers in errors are 1-based
    positions in ``df``, or the values of its ``_source_row`` column when a loader supplies them.

    Checks, in this order (the first failure raises): columns present; symbols present and safe
    (:func:`~alphaforge.utils.io.check_symbol`); timestamps parseable and not tz-naive mixed with
    tz-aware; numbers parseable; prices finite and > 0 (also ``adj_close``); ``low <= high``;
    ``open`` and ``close`` within ``[low, high]`` (relative slack 1e-9); volume finite and >= 0
    (NaN only in close-only panels); no duplicate ``(symbol, timestamp)``; every bar on its
    symbol's grid (each spacing a whole multiple of the symbol's modal spacing; 1 hour of slack
    for daily-or-slower bars to absorb DST in UTC-converted local midnights; not checked when the
    modal spacing is 28 days or more, since calendar months differ in length); at least
    ``min_bars`` bars per symbol.

    Args:
        df: Long table, one row per bar. Never modified.
        source: Name used in errors and stored in ``attrs["source"]``; defaults to
            ``df.attrs["source"]`` or ``"<DataFrame>"``.
        min_bars: Minimum bars per symbol; ``None`` disables the check.
        repair: Drop, instead of refusing, rows with impossible values (NaN/inf/<=0 price, high <
            low, open/close outside the range, negative or NaN/inf volume), duplicate
            ``(symbol, timestamp)`` rows (the first in source order is kept) and off-grid bars.
            Each dropped row is recorded in ``attrs["repairs"]`` as ``{row, symbol, timestamp,
            action, reason}``. Nothing is ever filled; other defects still raise.

    Returns:
        A new Panel (see the module docstring for the contract).

    Raises:
        DataError: for every defect above, naming source, symbol, row, timestamp and value.
    """
    path = source or df.attrs.get("source") or DATAFRAME_SOURCE
    long = index_to_columns(df)
    frame = map_columns(long, source=path)
    if len(frame) == 0:
        raise DataError("no data rows", path=path)
    if SOURCE_ROW in frame.columns:
        rows = frame[SOURCE_ROW].to_numpy(dtype=np.int64)
    else:
        rows = np.arange(1, len(frame) + 1, dtype=np.int64)
    _require_columns(frame, long.columns, path)
    symbols = _parse_symbols(frame["symbol"], rows, path)
    ts = _parse_timestamps(frame["timestamp"], rows, symbols, path)
    values = _parse_numbers(frame, rows, symbols, ts, path)
    close_only = _close_only(values)
    if close_only:
        # materialise the close-only convention; any given open/high/low are checked copies
        values.update({c: values["close"].copy() for c in ("open", "high", "low")})
        values["volume"] = np.full(len(rows), np.nan)

    work = pd.DataFrame({"timestamp": ts, "symbol": symbols, **values, "row": rows})
    repairs: list[dict[str, Any]] = []
    work = _check_values(work, close_only, repair, repairs, path)
    if len(work) == 0:
        raise DataError(f"repair dropped all {len(rows)} rows; nothing valid is left", path=path)
    work = _check_duplicates(work, repair, repairs, path)
    work, freq = _check_grid(work, repair, repairs, path)
    check_history(work["symbol"].to_numpy(), min_bars, path)

    panel = _finalise(work, "adj_close" in values)
    panel.attrs.update({k: v for k, v in df.attrs.items() if k not in _OWN_ATTRS})
    panel.attrs.update(source=str(path), freq=freq, close_only=close_only)
    if repair:
        repairs.sort(key=lambda r: r["row"])
        panel.attrs["repairs"] = repairs
        if repairs:
            logger.info("%s: repaired %d rows (dropped)", path, len(repairs))
    return panel


def check_history(symbols: np.ndarray | pd.Index, min_bars: int | None, path: str | None) -> None:
    """Refuse symbols with fewer than ``min_bars`` bars.

    Args:
        symbols: Symbol of every bar (one entry per bar).
        min_bars: Bars needed per symbol; ``None`` disables the check.
        path: Source name for the error.

    Raises:
        DataError: naming the first short symbol (in sorted order), the bars found and needed.
    """
    if min_bars is None:
        return
    counts = pd.Series(np.asarray(symbols, dtype=object)).value_counts().sort_index()
    short = counts[counts < min_bars]
    if len(short):
        sym = str(short.index[0])
        others = f"; {len(short)} of {len(counts)} symbols are too short" if len(short) > 1 else ""
        raise DataError(
            f"history too short: {int(short.iloc[0])} bars found, {min_bars} bars needed "
            f"(min_bars){others}",
            path=path,
            symbol=sym,
        )


def describe_panel(panel: pd.DataFrame) -> dict[str, Any]:
    """Summarise a Panel for the CLI and logs.

    Args:
        panel: A validated Panel.

    Returns:
        ``{"source", "n_symbols", "n_rows", "start", "end", "freq", "close_only"}``; ``start`` and
        ``end`` are ``pd.Timestamp``, ``freq`` a ``pd.Timedelta`` (NaT if unknown).
    """
    ts = panel.index.get_level_values("timestamp")
    return {
        "source": panel.attrs.get("source"),
        "n_symbols": int(panel.index.get_level_values("symbol").nunique()),
        "n_rows": int(len(panel)),
        "start": ts.min() if len(ts) else pd.NaT,
        "end": ts.max() if len(ts) else pd.NaT,
        "freq": panel.attrs.get("freq", pd.NaT),
        "close_only": bool(panel.attrs.get("close_only", False)),
    }


# ----------------------------------------------------------------------------- parsing


def index_to_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Move index levels named like ``timestamp``/``symbol`` into columns.

    Args:
        df: A long table or a Panel. Not modified.

    Returns:
        ``df`` itself when no index level has such a name, else a new frame.
    """
    levels = [n for n in df.index.names if n is not None and canonical_column(n) in INDEX_NAMES]
    return df.reset_index(level=levels) if levels else df


def _require_columns(frame: pd.DataFrame, found: pd.Index, path: str) -> None:
    have = set(frame.columns)
    ohlv = {"open", "high", "low", "volume"}
    # a close-only table (timestamp, symbol, close) is complete; otherwise all five are needed
    needed = (
        ["timestamp", "symbol", "close"] if not have & ohlv else ["timestamp", "symbol", *COLUMNS]
    )
    missing = [c for c in needed if c not in have]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(missing)}; found columns {[str(c) for c in found]}; "
            "expected timestamp, symbol, open, high, low, close, volume (adj_close optional) "
            "or a close-only table (timestamp, symbol, close)",
            path=path,
        )


def _first(mask: np.ndarray, rows: np.ndarray) -> int:
    """Position of the flagged entry that comes first in the source."""
    cand = np.flatnonzero(mask)
    return int(cand[np.argmin(rows[cand])])


def _fmt_ts(ts: Any) -> str | None:
    if ts is None or pd.isna(ts):
        return None
    ts = pd.Timestamp(ts)
    if ts.tzinfo is None and ts == ts.normalize():
        return ts.date().isoformat()
    return str(ts)


def _num(x: float) -> str:
    return f"{x:.10g}"


def _parse_symbols(col: pd.Series, rows: np.ndarray, path: str) -> np.ndarray:
    missing = col.isna().to_numpy()
    if missing.any():
        raise DataError("missing symbol", path=path, row=int(rows[_first(missing, rows)]))
    symbols = col.astype(str).to_numpy(dtype=object)
    codes, uniques = pd.factorize(symbols)  # codes, not string compares: "x\0" must survive
    for k, sym in enumerate(uniques):  # one check per distinct symbol, not per row
        try:
            check_symbol(sym)
        except DataError as err:
            i = _first(codes == k, rows)
            raise DataError(err.message, path=path, symbol=sym, row=int(rows[i])) from None
    return symbols


def _parse_timestamps(
    col: pd.Series, rows: np.ndarray, symbols: np.ndarray, path: str
) -> pd.DatetimeIndex:
    def fail(mask: np.ndarray, message: Callable[[int], str]) -> DataError:
        i = _first(mask, rows)
        return DataError(message(i), path=path, symbol=symbols[i], row=int(rows[i]))

    if isinstance(col.dtype, pd.DatetimeTZDtype):
        parsed = pd.DatetimeIndex(col).tz_convert("UTC")
        missing = np.asarray(parsed.isna())
    elif pd.api.types.is_datetime64_dtype(col.dtype):
        parsed = pd.DatetimeIndex(col)
        missing = np.asarray(parsed.isna())
    else:
        text = col.astype("string").str.strip()
        missing = (text.isna() | text.str.lower().isin(_NA_LOWER)).to_numpy(dtype=bool)
        aware = text.str.contains(_TZ_AWARE_TEXT, na=False).to_numpy(dtype=bool)
        raw = text.to_numpy(dtype=object, na_value=None)
        present = ~missing
        if aware[present].any() and not aware[present].all():
            ref = _first(present, rows)
            mixed = present & (aware != aware[ref])
            kind = "tz-aware" if aware[ref] else "tz-naive"
            raise fail(
                mixed,
                lambda i: (
                    f"timestamp {raw[i]!r} mixes tz-naive and tz-aware timestamps "
                    f"(row {rows[ref]} {raw[ref]!r} is {kind}); use one convention"
                ),
            )
        parsed = _parse_dates(text, present, utc=bool(aware[present].any()))
        bad = present & np.asarray(parsed.isna())
        if bad.any():
            raise fail(bad, lambda i: f"unparseable date {raw[i]!r} in column 'timestamp'")
    if missing.any():
        raise fail(missing, lambda i: "missing timestamp")
    if parsed.tz is not None:
        parsed = parsed.tz_convert("UTC")
    try:
        return parsed.as_unit("ns")
    except (OverflowError, pd.errors.OutOfBoundsDatetime) as err:
        raise DataError(f"timestamp out of the supported range: {err}", path=path) from None


def _parse_dates(text: pd.Series, present: np.ndarray, *, utc: bool) -> pd.DatetimeIndex:
    """Parse date text: ISO 8601 first, then pandas' format inference (e.g. ``1/4/1999``)."""
    best: pd.DatetimeIndex | None = None
    for fmt in ("ISO8601", None):
        try:
            with warnings.catch_warnings():  # "could not infer format": our own error follows
                warnings.simplefilter("ignore", UserWarning)
                parsed = pd.DatetimeIndex(
                    pd.to_datetime(text, format=fmt, utc=utc, errors="coerce")
                )
        except (ValueError, TypeError):  # e.g. mixed offsets that only resolve with utc=True
            continue
        if best is None or parsed.isna().sum() < best.isna().sum():
            best = parsed
        if not (np.asarray(best.isna()) & present).any():
            break
    if best is None:
        return pd.DatetimeIndex(np.full(len(text), np.datetime64("NaT", "ns")))
    return best


def _parse_numbers(
    frame: pd.DataFrame, rows: np.ndarray, symbols: np.ndarray, ts: pd.DatetimeIndex, path: str
) -> dict[str, np.ndarray]:
    values: dict[str, np.ndarray] = {}
    first_bad: tuple[int, int, str, object] | None = None  # (source row, position, column, raw)
    for col in (*COLUMNS, *OPTIONAL_COLUMNS):
        if col not in frame.columns:
            continue
        series = frame[col]
        if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series):
            values[col] = series.to_numpy(dtype=np.float64, na_value=np.nan)
            continue
        raw = series.astype(object)
        num = pd.to_numeric(raw, errors="coerce")
        na_text = raw.astype(str).str.strip().str.lower().isin(_NA_LOWER)
        bad = (num.isna() & raw.notna() & ~na_text).to_numpy(dtype=bool)
        if bad.any():
            i = _first(bad, rows)
            if first_bad is None or rows[i] < first_bad[0]:
                first_bad = (int(rows[i]), i, col, raw.iloc[i])
        values[col] = num.to_numpy(dtype=np.float64, na_value=np.nan)
    if first_bad is not None:
        row, i, col, raw_value = first_bad
        raise DataError(
            f"unparseable number {str(raw_value)!r} in column {col!r}",
            path=path,
            symbol=symbols[i],
            row=row,
            timestamp=_fmt_ts(ts[i]),
        )
    return values


def _close_only(values: Mapping[str, np.ndarray]) -> bool:
    """Close-only: no open/high/low/volume given, or they are copies of close with no volume."""
    if not any(c in values for c in ("open", "high", "low", "volume")):
        return True
    c = values["close"]
    same = all(np.array_equal(values[k], c, equal_nan=True) for k in ("open", "high", "low"))
    return same and bool(np.isnan(values["volume"]).all())


# ----------------------------------------------------------------------------- checks

Check = tuple[np.ndarray, Callable[[int], str]]


def _value_checks(work: pd.DataFrame, close_only: bool) -> list[Check]:
    """(mask, message) per defect class, in reporting order."""
    v = {c: work[c].to_numpy() for c in work.columns if c in (*COLUMNS, *OPTIONAL_COLUMNS)}
    checks: list[Check] = []
    priced = ["close"] if close_only else list(PRICE_COLUMNS)
    for col in priced + [c for c in OPTIONAL_COLUMNS if c in v]:
        x = v[col]
        checks += [
            (np.isnan(x), lambda i, c=col: f"{c} is NaN (missing price)"),
            (np.isinf(x), lambda i, c=col, x=x: f"{c} is {x[i]} (infinite price)"),
            (x <= 0, lambda i, c=col, x=x: f"{c} {_num(x[i])} <= 0 (prices must be positive)"),
        ]
    if close_only:
        return checks
    o, h, lo, c, vol = (v[k] for k in COLUMNS)
    ceiling, floor = h + RTOL * np.abs(h), lo - RTOL * np.abs(lo)  # range with rounding slack
    checks.append((h < floor, lambda i: f"high {_num(h[i])} < low {_num(lo[i])}"))
    for name, x in (("open", o), ("close", c)):
        checks.append(
            (
                (x > ceiling) | (x < floor),
                lambda i, n=name, x=x: (
                    f"{n} {_num(x[i])} outside [low {_num(lo[i])}, high {_num(h[i])}]"
                ),
            )
        )
    checks += [
        (
            np.isnan(vol),
            lambda i: (
                "volume is NaN (only close-only panels may lack volume; "
                "give timestamp, symbol, close alone to load closes only)"
            ),
        ),
        (np.isinf(vol), lambda i: f"volume is {vol[i]}"),
        (vol < 0, lambda i: f"volume {_num(vol[i])} < 0"),
    ]
    return checks


def _check_values(
    work: pd.DataFrame, close_only: bool, repair: bool, repairs: list[dict[str, Any]], path: str
) -> pd.DataFrame:
    return _apply(work, _value_checks(work, close_only), repair, repairs, path)


def _apply(
    work: pd.DataFrame,
    checks: list[Check],
    repair: bool,
    repairs: list[dict[str, Any]],
    path: str,
) -> pd.DataFrame:
    """Raise at the first failing check, or (repair) drop every flagged row and record why."""
    rows = work["row"].to_numpy()
    if not repair:
        for mask, message in checks:
            if mask.any():
                i = _first(mask, rows)
                raise DataError(
                    message(i),
                    path=path,
                    symbol=work["symbol"].iat[i],
                    row=int(rows[i]),
                    timestamp=_fmt_ts(work["timestamp"].iat[i]),
                )
        return work
    dropped = np.zeros(len(work), dtype=bool)
    for mask, message in checks:
        new = np.flatnonzero(mask & ~dropped)
        repairs += [  # one record per dropped row: these are the report, not a data pass
            {
                "row": int(rows[i]),
                "symbol": work["symbol"].iat[i],
                "timestamp": work["timestamp"].iat[i],
                "action": "dropped",
                "reason": message(i),
            }
            for i in new
        ]
        dropped[new] = True
    return work.loc[~dropped].reset_index(drop=True) if dropped.any() else work


def _symbol_sorted(work: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Work sorted by (symbol, timestamp, source row); symbol codes and int64 ns timestamps."""
    codes, _ = pd.factorize(work["symbol"], sort=True)
    t = pd.DatetimeIndex(work["timestamp"]).asi8
    order = np.lexsort((work["row"].to_numpy(), t, codes))
    return work.iloc[order].reset_index(drop=True), codes[order], t[order]


def _check_duplicates(
    work: pd.DataFrame, repair: bool, repairs: list[dict[str, Any]], path: str
) -> pd.DataFrame:
    work, codes, t = _symbol_sorted(work)
    same = np.r_[False, (codes[1:] == codes[:-1]) & (t[1:] == t[:-1])]
    if not same.any():
        return work
    # position of the first row of each run of equal (symbol, timestamp)
    start = np.maximum.accumulate(np.where(~same, np.arange(len(work)), 0))
    rows = work["row"].to_numpy()
    cols = [c for c in work.columns if c in (*COLUMNS, *OPTIONAL_COLUMNS)]
    exact = np.ones(len(work), dtype=bool)
    for c in cols:
        x = work[c].to_numpy()
        exact &= (x == x[start]) | (np.isnan(x) & np.isnan(x[start]))

    def message(i: int) -> str:
        what = "exact duplicate" if exact[i] else "duplicate (symbol, timestamp) with other values"
        return f"{what}: rows {rows[start[i]]} and {rows[i]} are both this bar"

    return _apply(work, [(same, message)], repair, repairs, path)


def _modal(codes: np.ndarray, x: np.ndarray, n_codes: int) -> np.ndarray:
    """Most frequent value of ``x`` per code (ties -> smallest); -1 where a code has none."""
    out = np.full(n_codes, -1, dtype=np.int64)
    if len(x) == 0:
        return out
    counts = pd.DataFrame({"code": codes, "x": x}).value_counts().reset_index(name="n")
    counts = counts.sort_values(["code", "n", "x"], ascending=[True, False, True])
    top = counts.drop_duplicates("code")
    out[top["code"].to_numpy()] = top["x"].to_numpy()
    return out


def _check_grid(
    work: pd.DataFrame, repair: bool, repairs: list[dict[str, Any]], path: str
) -> tuple[pd.DataFrame, pd.Timedelta]:
    """Flag bars off their symbol's grid (mixed bar frequency); also returns the panel freq."""
    work, codes, t = _symbol_sorted(work)
    n_codes = int(codes.max()) + 1
    within = np.r_[False, codes[1:] == codes[:-1]]
    gaps = np.r_[0, np.diff(t)]
    spacing = _modal(codes[within], gaps[within], n_codes)  # per symbol, ns
    pooled = pd.Series(gaps[within]).value_counts()
    freq = pd.Timedelta(int(pooled.index[np.argmax(pooled.to_numpy())])) if len(pooled) else pd.NaT

    m = spacing[codes]
    day = pd.Timedelta("1D").value
    checked = (m > 0) & (m < 28 * day)  # calendar months/quarters have no fixed length
    mm = np.where(checked, m, 1)
    t0 = t[np.r_[0, np.flatnonzero(~within[1:]) + 1]][codes]  # first bar of the symbol
    residue = (t - t0) % mm
    phase = _modal(codes[checked], residue[checked], n_codes)[codes]
    off = (residue - phase) % mm
    distance = np.minimum(off, mm - off)
    slack = np.where(m >= day, pd.Timedelta("1h").value, 0)  # DST shifts of local midnights
    bad = checked & (distance > slack)
    if not bad.any():
        return work, freq
    prev = np.r_[t[0], t[:-1]]

    def message(i: int) -> str:
        step = pd.Timedelta(m[i])
        since = (
            f"{pd.Timedelta(int(t[i] - prev[i]))} after the previous bar"
            if within[i]
            else "the first bar"
        )
        return (
            f"mixed bar frequency: bar is off the symbol's {step} grid ({since}; every spacing "
            f"must be a whole multiple of the modal spacing {step})"
        )

    return _apply(work, [(bad, message)], repair, repairs, path), freq


def _finalise(work: pd.DataFrame, has_adj: bool) -> pd.DataFrame:
    codes, _ = pd.factorize(work["symbol"], sort=True)
    ts = pd.DatetimeIndex(work["timestamp"])
    order = np.lexsort((codes, ts.asi8))  # (timestamp, symbol), symbols in lexicographic order
    index = pd.MultiIndex.from_arrays(
        [ts[order], pd.Index(work["symbol"].to_numpy(dtype=object)[order], dtype=object)],
        names=list(INDEX_NAMES),
    )
    cols = [*COLUMNS, *(OPTIONAL_COLUMNS if has_adj else ())]
    data = {c: work[c].to_numpy(dtype=np.float64)[order] for c in cols}
    return pd.DataFrame(data, index=index, columns=cols)
