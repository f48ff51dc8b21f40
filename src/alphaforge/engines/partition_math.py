"""The per-partition work of the Dask feature engine: what each task computes, by calling the
in-memory feature code (``build_features``, ``CrossSection``) on its partition.

A task of the per-symbol stage gets whole symbols; a task of the cross-sectional stage gets
whole timestamps and ranks them on a grid as wide as the whole panel's symbol list, with the
grid-or-groupby choice the whole panel would make (:func:`grid_is_dense`), so every value is
the one ``build_features`` gives. See :mod:`alphaforge.engines.dask_features` for the stages.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask.dataframe as dd
import numpy as np
import numpy.typing as npt
import pandas as pd

from alphaforge.data.io import Shard
from alphaforge.errors import ConfigError, DataError
from alphaforge.features import build_features, feature_names
from alphaforge.features.cross_section import CrossSection
from alphaforge.labels import LabelSpec, make_label

logger = logging.getLogger(__name__)

__all__ = [
    "FeatureJob",
    "aligned_cross_section",
    "cross_section_part",
    "grid_is_dense",
    "symbol_features",
]

MANIFEST = "_dataset.json"
FORMAT = "alphaforge.features"
LABEL = "label"  # column of the label in a dataset built with one
GROUP = "_group"  # partition number of a row's symbols
CODE = "_code"  # a symbol's position in the panel's sorted symbols
KEYS = ["timestamp", "symbol"]
BASE_DIR, CS_IN_DIR = "_base", "_cs_in"  # per-symbol columns and cross-sectional inputs, mid-build
CS_PARTITION_BYTES = 32 << 20  # cross-sectional inputs per timestamp partition
ROW_GROUP = 65_536  # Parquet row group: fold windows read only the groups they need


@dataclass(frozen=True)
class FeatureJob:
    """What every task computes, resolved from ``build_features``' arguments.

    Attributes:
        base: Output features, in ``build_features``' order.
        cs: Features with cross-sectional ranks and z-scores.
        dtype: Output dtype name (``"float64"`` or ``"float32"``).
        label: Label added as column ``label`` (raw, untransformed), or ``None``.
        min_bars: Bars needed per symbol (``None``: no check).
        repair: Drop defective rows instead of refusing them.
        source: The source's name, for errors.
        shards: A dataset's shards, indexed by the ``_shard`` column.
    """

    base: tuple[str, ...]
    cs: tuple[str, ...]
    dtype: str = "float64"
    label: LabelSpec | None = None
    min_bars: int | None = None
    repair: bool = False
    source: str = ""
    shards: tuple[Shard, ...] = ()

    @classmethod
    def resolve(
        cls, names: Sequence[str] | None, options: dict[str, Any], **rest: Any
    ) -> FeatureJob:
        """Resolve feature names as ``build_features`` does.

        Args:
            names: ``build_features``' ``names``.
            options: Its other arguments: ``catalogue``, ``cross_section``, ``cs_features``,
                ``dtype``.
            **rest: The job's other fields.

        Raises:
            ConfigError: unknown feature names, catalogue or option.
        """
        unknown = sorted(set(options) - {"catalogue", "cross_section", "cs_features", "dtype"})
        if unknown:
            raise ConfigError(
                f"unknown feature option(s) {unknown}; valid: catalogue, cross_section, "
                "cs_features, dtype"
            )
        columns = feature_names(
            names,
            catalogue=options.get("catalogue", "default"),
            cross_section=options.get("cross_section", True),
            cs_features=options.get("cs_features"),
        )
        cs = tuple(c.removeprefix("cs_rank_") for c in columns if c.startswith("cs_rank_"))
        base = tuple(c for c in columns if not c.startswith(("cs_rank_", "cs_z_")))
        dtype = np.dtype(options.get("dtype", np.float64)).name
        return cls(base=base, cs=cs, dtype=dtype, **rest)

    @property
    def needed(self) -> list[str]:
        """Per-symbol features to compute: the output ones, then cross-section-only inputs."""
        return [*self.base, *(n for n in self.cs if n not in self.base)]

    def columns(self, cs: Sequence[str]) -> list[str]:
        """Output feature columns when ``cs`` get the cross-sectional stage."""
        return [*self.base, *(f"cs_rank_{n}" for n in cs), *(f"cs_z_{n}" for n in cs)]

    def outputs(self, cs: Sequence[str]) -> list[str]:
        """Every column of an output part: keys, features, label."""
        return [*KEYS, *self.columns(cs), *([LABEL] if self.label else [])]


# --------------------------------------------------------------------------- per-partition work
def symbol_features(panel: pd.DataFrame, job: FeatureJob) -> pd.DataFrame:
    """Per-symbol stage of one partition holding whole symbols: float64 long frame.

    Returns:
        ``timestamp, symbol``, ``job.needed`` features (float64), ``label`` if asked, sorted
        like the panel.
    """
    X = build_features(panel, job.needed, cross_section=False)
    frame = X.reset_index()
    if job.label is not None:
        y = make_label(panel, job.label.kind, job.label.horizon, price=job.label.price)
        frame[LABEL] = y.to_numpy(dtype=np.float64)
    return frame


@dataclass(frozen=True)
class _Grid:
    """What ``CrossSection`` reads of a layout: (timestamp, symbol) codes of the rows."""

    t_codes: npt.NDArray[np.intp]
    timestamps: Sequence[Any]
    n_symbols: int
    n_rows: int
    s_codes: npt.NDArray[np.intp]
    balanced: bool = False


def grid_is_dense(n_timestamps: int, n_symbols: int, n_rows: int) -> bool:
    """Whether ``CrossSection`` ranks the whole panel on a grid (else a groupby)."""
    empty = np.empty(0, dtype=np.intp)
    whole = _Grid(empty, range(n_timestamps), n_symbols, n_rows, empty, balanced=True)
    return bool(CrossSection(whole).dense)  # type: ignore[arg-type]


def cross_section_part(
    part: pd.DataFrame,
    cs: Sequence[str],
    symbols: Sequence[str],
    dense: bool,
    dtype: str = "float64",
) -> pd.DataFrame:
    """Ranks and z-scores of one partition holding whole timestamps.

    Args:
        part: ``timestamp, symbol, _group`` and the ``cs`` input columns (float64).
        cs: Features to rank.
        symbols: Every symbol of the panel, sorted: the grid's columns.
        dense: The whole panel's grid-or-groupby choice (:func:`grid_is_dense`).
        dtype: Output dtype (computed in float64, rounded once, as in memory).

    Returns:
        ``timestamp, _code`` (the symbol's position in ``symbols``, int32), ``_group``, then
        every ``cs_rank_*`` and every ``cs_z_*``; rows sorted by (timestamp, symbol).
    """
    s_codes = pd.Index(symbols).get_indexer(part["symbol"])
    t_codes, stamps = pd.factorize(part["timestamp"], sort=True)
    order = np.lexsort((s_codes, t_codes))  # the panel's (timestamp, symbol) order
    grid = _Grid(t_codes[order], stamps, len(symbols), len(part), s_codes[order])
    stage = CrossSection(grid)  # type: ignore[arg-type]
    stage.dense = dense
    out = {
        "timestamp": part["timestamp"].to_numpy()[order],
        CODE: s_codes[order].astype(np.int32),
        GROUP: part[GROUP].to_numpy()[order],
    }
    rank, z, zs = np.empty(len(part)), np.empty(len(part)), {}
    for name in cs:  # one feature at a time: its float64 grid, then its two output columns
        stage.rank_and_z(part[name].to_numpy(np.float64)[order], rank, z)
        out[f"cs_rank_{name}"] = rank.astype(dtype)
        zs[f"cs_z_{name}"] = z.astype(dtype)
    return pd.DataFrame({**out, **zs})


def symbol_codes(symbols: Sequence[str], column: Any) -> npt.NDArray[np.int32]:
    """Positions of ``column``'s symbols in the sorted list ``symbols`` (the ``_code``)."""
    return pd.Index(symbols).get_indexer(pd.Index(column)).astype(np.int32)


def keyed(frame: pd.DataFrame) -> pd.MultiIndex:
    """(timestamp in ns, symbol as str) keys of a long frame, whatever Parquet or Dask made of
    their dtypes."""
    ts = pd.DatetimeIndex(frame["timestamp"]).as_unit("ns")
    symbols = pd.Index(frame["symbol"].to_numpy(dtype=object), dtype=object)  # as a Panel's
    return pd.MultiIndex.from_arrays([ts, symbols], names=KEYS)


def aligned_cross_section(
    timestamps: npt.NDArray[Any],
    codes: npt.NDArray[np.int32],
    cs_values: pd.DataFrame,
    job: FeatureJob,
) -> dict[str, npt.NDArray[Any]]:
    """A partition's cross-sectional columns in the order of its per-symbol rows.

    Args:
        timestamps, codes: Timestamps (int64 nanoseconds) and symbol codes of the partition's
            per-symbol rows, sorted by (timestamp, symbol) as every part is.
        cs_values: Its rows of the cross-sectional stage (:func:`cross_section_part`), in any
            order.
        job: The job.

    Raises:
        DataError: the two do not hold the same bars (a bug or a corrupted build).
    """
    ts = pd.DatetimeIndex(cs_values["timestamp"]).as_unit("ns").asi8
    order = np.lexsort((cs_values[CODE].to_numpy(), ts))
    same = len(order) == len(codes) and np.array_equal(ts[order], timestamps)
    if not (same and np.array_equal(cs_values[CODE].to_numpy()[order], codes)):
        raise DataError(
            f"the cross-sectional stage returned other bars than the {len(codes)} of a part",
            path=job.source,
        )
    names = job.columns(job.cs)[len(job.base) :]
    return {c: cs_values[c].to_numpy()[order] for c in names}


def empty_meta(frame: dd.DataFrame, columns: Sequence[str], floats: Sequence[str]) -> pd.DataFrame:
    """A Dask ``meta``: these columns of ``frame``, then float64 ``floats``, no rows."""
    cols = {c: pd.Series(dtype=frame.dtypes[c]) for c in columns}
    cols.update({c: pd.Series(dtype=np.float64) for c in floats})
    return pd.DataFrame(cols)


def cs_meta(frame: dd.DataFrame, cs: Sequence[str], dtype: str) -> pd.DataFrame:
    """The ``meta`` of :func:`cross_section_part`'s output."""
    ranked = [f"{prefix}{n}" for prefix in ("cs_rank_", "cs_z_") for n in cs]
    cols = {"timestamp": pd.Series(dtype=frame.dtypes["timestamp"])}
    cols[CODE] = pd.Series(dtype=np.int32)
    cols[GROUP] = pd.Series(dtype=frame.dtypes[GROUP])
    cols.update({c: pd.Series(dtype=dtype) for c in ranked})
    return pd.DataFrame(cols)


def cross_sectioned(job: FeatureJob, n_symbols: int) -> tuple[str, ...]:
    """The features that get the cross-sectional stage: none for a one-symbol panel, which
    ``build_features`` also leaves without them (with the same WARNING)."""
    if job.cs and n_symbols == 1:
        dropped = job.columns(job.cs)[len(job.base) :]
        logger.warning(
            "features: the panel has one symbol: left out its %d cross-sectional columns %s "
            "(a rank across one symbol is constant, its z-score NaN)",
            len(dropped),
            ", ".join(dropped),
        )
        return ()
    return job.cs
