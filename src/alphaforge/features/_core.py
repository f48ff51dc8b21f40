"""The feature catalogue's building blocks: `FeatureSpec`, and the packed per-symbol layout.

Why a packed layout:
- A Panel is long, rows sorted by (timestamp, symbol). Rolling windows must count each symbol's
  OWN bars (a halted symbol's missing bar is not a hole in its window), which is what a
  per-symbol ``groupby(symbol).rolling(n)`` does, slowly.
- We pack each field into (T_b, n_b) arrays: column j holds one symbol's bars in time order,
  packed to the top (row r = the symbol's r-th bar). A trailing window of n bars at row r is then
  rows r-n+1..r of one column, whatever the calendar gaps; warm-up is simply ``row < lookback-1``.
- Symbols go in blocks of ~1 MB of float64 (``PackedLayout``): every temporary of a feature then
  stays in cache and is recycled by the allocator. On whole-panel arrays the same numpy code
  runs ~5x slower, mostly page faults on fresh 40 MB temporaries.
- Rows past a symbol's last bar are padding that repeats its last bar (finite, so no spurious
  warnings), sit strictly after every real bar of that column and are never read back.
- Every kernel works down a column from the symbol's first bar, so a value at row r is computed
  from rows <= r of that column only: later bars, and other symbols, cannot change it, not even
  by float rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import numpy as np
import pandas as pd

__all__ = ["FeatureSpec", "Feature", "Family", "Block", "PackedLayout", "Context"]

T = TypeVar("T", np.ndarray, tuple[np.ndarray, ...])


@dataclass(frozen=True)
class FeatureSpec:
    """Static description of one feature in the catalogue.

    Attributes:
        name: Unique column name across catalogues, e.g. ``"ret_20"`` or ``"ROC20"``.
        family: Module (group) that computes it: ``returns``, ``volatility``, ``momentum``,
            ``oscillators``, ``volume`` or ``calendar`` (default catalogue); ``alpha158_kbar``,
            ``alpha158_price`` or ``alpha158_rolling`` (Qlib's groups, module ``alpha158``).
        lookback: Number of the symbol's own bars, the current one included, that the value at a
            bar depends on. The value is NaN on a symbol's first ``lookback - 1`` bars (warm-up)
            and bars older than that never change it.
        fields: Panel columns read, e.g. ``("high", "low", "close")``; empty for calendar features.
        description: One line: formula and units.
    """

    name: str
    family: str
    lookback: int
    fields: tuple[str, ...]
    description: str


class Feature(NamedTuple):
    """A spec and the function computing it on the packed layout: ``compute(ctx) -> (T, N)``."""

    spec: FeatureSpec
    compute: Callable[[Context], np.ndarray]


class Family:
    """Collects one family's features, in catalogue order.

    Args:
        name: Family name every spec gets (``FeatureSpec.family``).

    Attributes:
        name: The family name.
        features: The features added so far, in the order added.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.features: list[Feature] = []

    def add(
        self,
        name: str,
        lookback: int,
        fields: tuple[str, ...],
        description: str,
        compute: Callable[[Context], np.ndarray],
    ) -> None:
        """Append one feature (see :class:`FeatureSpec` for the meaning of each field).

        Args:
            name: Unique column name.
            lookback: Bars, the current one included, the value depends on.
            fields: Panel columns read.
            description: One line: formula and units.
            compute: ``compute(ctx) -> (T, N)`` on the packed layout.
        """
        spec = FeatureSpec(name, self.name, lookback, fields, description)
        self.features.append(Feature(spec, compute))


def _dense_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber MultiIndex codes 0..k-1 over the levels actually used (drops unused levels).

    Returns:
        (codes as intp, level positions kept), both 1-D.
    """
    codes = np.asarray(codes, dtype=np.intp)
    used = np.bincount(codes) > 0
    remap = np.cumsum(used) - 1  # old level position -> new dense code
    return remap[codes], np.flatnonzero(used)


class Block:
    """A group of symbols packed together into one (T_b, n_b) array.

    Attributes:
        symbols: (n_b,) dense symbol codes, one per packed column.
        shape: (T_b, n_b); T_b is the longest history in the block.
        cols: slice of symbol codes when the panel is balanced (packing is then a reshape), else
            None and ``rows`` / ``flat`` / ``gather`` map between long and packed order.
        rows: (n_rows_b,) long rows of the block's bars.
        flat: (n_rows_b,) packed cell (raveled) of each of those rows.
        gather: (T_b * n_b,) long row read by each packed cell (padding reads the last bar).
        t_codes: (T_b, n_b) timestamp code of each packed cell.
    """

    def __init__(
        self,
        symbols: np.ndarray,
        n_bars: int,
        cols: slice | None,
        rows: np.ndarray | None = None,
        flat: np.ndarray | None = None,
        gather: np.ndarray | None = None,
    ) -> None:
        self.symbols = symbols
        self.shape = (n_bars, len(symbols))
        self.cols, self.rows, self.flat, self.gather = cols, rows, flat, gather
        self.t_codes: np.ndarray | None = None


class PackedLayout:
    """Maps a (timestamp, symbol)-sorted long panel to packed blocks and back.

    Symbols are processed in blocks of about ``block_cells`` packed cells (1 MB of float64 by
    default), so the temporaries of a feature stay in cache and the allocator reuses them instead
    of faulting in fresh pages for every whole-panel temporary. Blocks group symbols of similar
    history length, so unbalanced panels carry little padding.

    Args:
        index: The panel's MultiIndex ``(timestamp, symbol)``, sorted, without duplicates.
        block_cells: Target number of cells (T_b x n_b) per block.

    Attributes:
        n_rows: Rows of the long panel.
        n_symbols: N, symbols with at least one bar.
        counts: (N,) bars per symbol.
        t_codes: (n_rows,) dense timestamp code of each long row (0 = earliest timestamp).
        s_codes: (n_rows,) dense symbol code of each long row.
        timestamps: (n_timestamps,) the distinct timestamps, indexed by ``t_codes``.
        symbols: (N,) the distinct symbols, indexed by ``s_codes``.
        balanced: Every symbol has a bar at every timestamp (long order = (T, N) C order).
        blocks: The blocks, covering every symbol once.
    """

    def __init__(self, index: pd.MultiIndex, block_cells: int = 1 << 17) -> None:
        self.n_rows = len(index)
        self.t_codes, t_used = _dense_codes(index.codes[0])
        self.s_codes, s_used = _dense_codes(index.codes[1])
        self.timestamps = index.levels[0][t_used]
        self.symbols = index.levels[1][s_used]
        n_ts, n_sym = len(t_used), len(s_used)
        self.n_symbols = n_sym
        self.counts = np.bincount(self.s_codes, minlength=n_sym)
        # sorted + no duplicates + every (t, s) present => long order IS the (T, N) C order
        self.balanced = self.n_rows == n_ts * n_sym
        self.shared: dict[object, np.ndarray] = {}  # per-panel values, e.g. per timestamp
        if self.balanced:
            self.blocks = self._balanced_blocks(block_cells)
        else:
            self.blocks = self._blocks(block_cells)

    def _balanced_blocks(self, block_cells: int) -> list[Block]:
        n_bars, n_sym = len(self.timestamps), self.n_symbols
        step = max(1, block_cells // max(n_bars, 1))
        return [
            Block(np.arange(j, min(j + step, n_sym)), n_bars, slice(j, min(j + step, n_sym)))
            for j in range(0, n_sym, step)
        ]

    def _blocks(self, block_cells: int) -> list[Block]:
        counts = self.counts
        # block membership: runs of consecutive symbol codes, so a block's bars at one timestamp
        # are neighbours in the long output (cache-friendly writes); unless that pads > 25%
        # more cells than grouping symbols of similar history length does
        width = max(1, block_cells // int(counts.max()))
        groups = [
            np.arange(j, min(j + width, self.n_symbols)) for j in range(0, self.n_symbols, width)
        ]
        if sum(int(counts[g].max()) * len(g) for g in groups) > 1.25 * self.n_rows:
            by_length = np.argsort(-counts, kind="stable")
            groups, i = [], 0
            while i < len(by_length):  # one iteration per block
                width = max(1, block_cells // int(counts[by_length[i]]))
                groups.append(by_length[i : i + width])
                i += width
        block_of = np.empty(self.n_symbols, dtype=np.intp)
        local_col = np.empty(self.n_symbols, dtype=np.intp)
        for b, syms in enumerate(groups):
            block_of[syms] = b
            local_col[syms] = np.arange(len(syms))
        # position of each long row within its symbol: rank in a stable symbol-major sort
        order = np.argsort(self.s_codes, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pos = np.empty(self.n_rows, dtype=np.intp)
        pos[order] = np.arange(self.n_rows) - np.repeat(starts, counts)
        # long rows grouped by block (time order kept inside a block)
        row_block = block_of[self.s_codes]
        by_block = np.argsort(row_block, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(row_block, minlength=len(groups)))])
        blocks = []
        for b, syms in enumerate(groups):
            rows = by_block[bounds[b] : bounds[b + 1]]
            n_bars, width = int(counts[syms].max()), len(syms)
            flat = pos[rows] * width + local_col[self.s_codes[rows]]
            cell_row = np.empty(n_bars * width, dtype=np.intp)
            cell_row[flat] = rows
            # padding cell (r, c) with r >= count_c reads the symbol's last bar
            last = np.minimum(np.arange(n_bars)[:, None], counts[syms][None, :] - 1)
            gather = cell_row[(last * width + np.arange(width)).ravel()]
            blocks.append(Block(syms, n_bars, None, rows, flat, gather))
        return blocks

    def pack(self, block: Block, values: np.ndarray) -> np.ndarray:
        """Long (n_rows,) values -> the block's packed (T_b, n_b) array (C-contiguous)."""
        if block.cols is not None:
            return np.ascontiguousarray(values.reshape(-1, self.n_symbols)[:, block.cols])
        return values[block.gather].reshape(block.shape)

    def unpack(self, block: Block, packed: np.ndarray, out: np.ndarray) -> None:
        """Write the block's packed (T_b, n_b) values into their rows of long ``out``."""
        if block.cols is not None:
            out.reshape(-1, self.n_symbols)[:, block.cols] = packed
        else:
            out[block.rows] = packed.reshape(-1)[block.flat]

    def packed_t_codes(self, block: Block) -> np.ndarray:
        """(T_b, n_b) timestamp code of each packed cell of the block (cached on the block)."""
        if block.t_codes is None:
            block.t_codes = self.pack(block, self.t_codes)
        return block.t_codes


class Context:
    """One block's packed fields plus a memo of intermediates shared between its features.

    Feature functions call ``ctx.field("close")``, ``ctx.memo(key, fn)`` and
    ``ctx.per_timestamp(values)``; nothing mutates a returned array (the memo hands the same
    object to every caller).

    Args:
        layout: The panel's layout.
        block: The block computed in this context.
        columns: Long (n_rows,) float64 arrays of the panel's fields, by name.
    """

    def __init__(self, layout: PackedLayout, block: Block, columns: dict[str, np.ndarray]) -> None:
        self.layout = layout
        self.block = block
        self._columns = columns
        self._memo: dict[object, np.ndarray] = {}

    @property
    def shape(self) -> tuple[int, int]:
        """(T_b, n_b) shape of this block's packed arrays."""
        return self.block.shape

    def field(self, name: str) -> np.ndarray:
        """Packed (T_b, n_b) float64 array of a panel column (all NaN if the panel lacks it)."""

        def compute() -> np.ndarray:
            if name in self._columns:  # may be a view of the panel's own memory
                return self.layout.pack(self.block, self._columns[name])
            return np.full(self.shape, np.nan)  # e.g. no volume column: volume features -> NaN

        return self.memo(("field", name), compute)

    def per_timestamp(self, values: np.ndarray) -> np.ndarray:
        """Values per distinct timestamp, (n_timestamps,) -> packed (T_b, n_b) float64."""
        return np.asarray(values, dtype=np.float64)[self.layout.packed_t_codes(self.block)]

    def per_panel(self, key: object, fn: Callable[[], np.ndarray]) -> np.ndarray:
        """Return ``fn()`` computed once per key for the whole panel (all blocks share it)."""
        shared = self.layout.shared
        if key not in shared:
            shared[key] = _read_only(fn())
        return shared[key]

    def memo(self, key: object, fn: Callable[[], np.ndarray]) -> np.ndarray:
        """Return ``fn()`` computed once per key for this block (read-only: it is shared)."""
        if key not in self._memo:
            self._memo[key] = _read_only(fn())
        return self._memo[key]


def _read_only(value: T) -> T:
    """Flag an array (or a tuple of arrays) read-only, so no feature can mutate a shared value."""
    for array in value if isinstance(value, tuple) else (value,):
        array.flags.writeable = False
    return value
