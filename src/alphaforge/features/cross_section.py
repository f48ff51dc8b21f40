"""Cross-sectional stage: per-timestamp percentile rank and z-score.

Each is taken across the symbols present at that timestamp. It uses only bars at the same
timestamp, so it adds no look-ahead.

Definitions (NaN values are left out of their cross-section and stay NaN):
- ``cs_rank``: (average rank - 1) / (n_valid - 1), in [0, 1]; ties share their mean rank;
  a cross-section of one symbol gets 0.5 (``build_features`` leaves the stage out for a
  one-symbol panel, with a WARNING).
- ``cs_z``: (x - mean) / std with ddof=1; NaN when fewer than two values or all values equal.

Layout: a dense (n_timestamps, N) grid (row = timestamp, column = symbol), ranked row-wise with
one ``argsort`` per feature. When timestamps barely overlap across symbols (the grid would be
mostly holes) a pandas groupby on the timestamp does the same work instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alphaforge.features._core import PackedLayout

__all__ = ["DEFAULT_CS_FEATURES", "CrossSection", "rank_pct_grid", "zscore_grid"]

# informative and comparable across symbols: short and long returns, momentum, risk, RSI, volume
DEFAULT_CS_FEATURES: tuple[str, ...] = (
    "ret_1",
    "ret_5",
    "ret_20",
    "mom_12_1",
    "rv_20",
    "natr_14",
    "rsi_14",
    "volume_z_20",
)

_SPARSE_FACTOR = 4  # use the grid while it has at most this many cells per panel row
_CHUNK_CELLS = 1 << 16  # grid cells ranked at a time


def rank_pct_grid(grid: np.ndarray) -> np.ndarray:
    """Row-wise percentile rank of a (n_timestamps, N) grid, NaN-aware, ties averaged."""
    n_ts, n_cols = grid.shape
    missing = np.isnan(grid)
    # (n_ts, N) sorted order, NaN last. numpy's SIMD sort skips arrays holding NaN (4x slower), so
    # sort with NaN -> +inf; a genuine +inf (never produced by the features) takes the slow path
    key = grid if np.isposinf(grid).any() else np.where(missing, np.inf, grid)
    order = np.argsort(key, axis=1)
    # flat positions: plain 1-D gather/scatter is ~2x faster than take/put_along_axis
    order += np.arange(0, n_ts * n_cols, n_cols)[:, None]
    order = order.reshape(-1)
    ordered = grid.reshape(-1)[order]
    # runs of equal values in each sorted row (a row start always starts a run; NaNs never tie)
    new_run = np.ones(grid.size, dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=new_run[1:])
    new_run[::n_cols] = True
    starts = np.flatnonzero(new_run)
    if len(starts) == grid.size:  # no ties: rank = sorted position
        rank0 = np.tile(np.arange(n_cols, dtype=np.float64), n_ts)
    else:  # each member of a run spanning flat positions a..b gets (a + b) / 2
        lengths = np.diff(starts, append=grid.size)
        rank0 = np.repeat(starts + 0.5 * (lengths - 1), lengths)
        rank0 -= np.repeat(np.arange(0, grid.size, n_cols, dtype=np.float64), n_cols)
    n_valid = n_cols - np.count_nonzero(missing, axis=1)
    denom = np.repeat(n_valid - 1.0, n_cols)
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(denom > 0, rank0 / denom, 0.5)
    out = np.empty(grid.size)
    out[order] = pct
    out = out.reshape(grid.shape)
    out[missing] = np.nan
    return out


def zscore_grid(grid: np.ndarray) -> np.ndarray:
    """Row-wise z-score (ddof=1) of a (n_timestamps, N) grid, NaN-aware."""
    valid = ~np.isnan(grid)
    n_valid = np.count_nonzero(valid, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, grid, 0.0).sum(axis=1) / n_valid
        dev = grid - mean[:, None]
        ss = np.where(valid, dev * dev, 0.0).sum(axis=1)
        std = np.sqrt(ss / (n_valid - 1))
    # exact test for an all-equal cross-section: its std is rounding noise, not 0
    flat = np.fmax.reduce(grid, axis=1) == np.fmin.reduce(grid, axis=1)
    std[(n_valid < 2) | flat] = np.nan
    return dev / std[:, None]


class CrossSection:
    """Maps long panel values to per-timestamp cross-sections and back.

    Args:
        layout: The panel's packed layout (its timestamp and symbol codes are reused).
    """

    def __init__(self, layout: PackedLayout) -> None:
        self.t_codes = layout.t_codes
        self.shape = (len(layout.timestamps), layout.n_symbols)
        n_cells = self.shape[0] * self.shape[1]
        self.dense = n_cells <= _SPARSE_FACTOR * layout.n_rows + 1_000_000
        # flat cell of each long row; None when the long order already is the grid order
        self.flat = None if layout.balanced else self.t_codes * self.shape[1] + layout.s_codes
        self._buffers: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _grids(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values, rank, z) grids, allocated once and reused by every feature."""
        if self._buffers is None:
            self._buffers = (np.empty(self.shape), np.empty(self.shape), np.empty(self.shape))
        return self._buffers

    def rank_and_z(self, values: np.ndarray, rank_out: np.ndarray, z_out: np.ndarray) -> None:
        """Write the percentile rank and z-score of long ``values`` into the two out arrays."""
        values = np.asarray(values, dtype=np.float64)
        if self.dense:
            if self.flat is None:  # balanced: the long arrays are the grids
                grid = values.reshape(self.shape)
                rank, z = rank_out.reshape(self.shape), z_out.reshape(self.shape)
            else:
                grid, rank, z = self._grids()
                grid.fill(np.nan)  # symbols absent at a timestamp stay NaN
                grid.reshape(-1)[self.flat] = values
            step = max(1, _CHUNK_CELLS // max(self.shape[1], 1))
            for s in range(0, self.shape[0], step):  # timestamp chunks: temporaries fit in cache
                rank[s : s + step] = rank_pct_grid(grid[s : s + step])
                z[s : s + step] = zscore_grid(grid[s : s + step])
            if self.flat is not None:
                for grid_out, out in ((rank, rank_out), (z, z_out)):
                    if out.dtype == np.float64:
                        np.take(grid_out.reshape(-1), self.flat, out=out)
                    else:
                        out[...] = grid_out.reshape(-1)[self.flat]
            return
        # sparse fallback: groupby on the timestamp code
        s = pd.Series(values)
        g = s.groupby(self.t_codes)
        n_valid = g.transform("count").to_numpy()
        rank = g.rank(method="average").to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            rank_out[...] = np.where(n_valid > 1, (rank - 1.0) / (n_valid - 1.0), 0.5)
        rank_out[np.isnan(values)] = np.nan
        flat = (g.transform("max") == g.transform("min")).to_numpy()
        std = np.where(flat | (n_valid < 2), np.nan, g.transform("std").to_numpy())
        z_out[...] = (values - g.transform("mean").to_numpy()) / std
