"""Sources as Dask frames whose partitions hold whole symbols: an in-memory Panel cut by
symbol, shards grouped without reading them (``symbol=`` folders, symbol ranges from Parquet
statistics), or shards read, validated and shuffled by symbol.

Every shard is read (and validated) by one task, so a shard must fit in a worker's memory with
room to spare; dataset writers (Spark, Dask, pyarrow, this engine) write one file per partition.
A shard holding whole symbols is never split, so it is one partition however large.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from alphaforge.data.io import Shard, file_kind, file_stem, is_dataset, list_shards
from alphaforge.data.loader import SHARD, combine_shards, load_panel, read_shard
from alphaforge.data.schema import canonical_column, check_history
from alphaforge.engines.partition_math import GROUP, KEYS, FeatureJob

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_PARTITION_ROWS", "as_panel", "partitions", "plan_groups"]

# --------------------------------------------------------------------------- partitions
DEFAULT_PARTITION_ROWS = 250_000  # bars per per-symbol partition: ~0.25 GB of float64 features


def as_panel(part: pd.DataFrame) -> pd.DataFrame:
    """A partition's long rows (validated, sorted) back as a Panel."""
    return part.drop(columns=[GROUP]).set_index(KEYS)


def _same(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


def _read_group(unit: tuple[int, list[int]], job: FeatureJob) -> pd.DataFrame:
    """Partition ``g``: its shards read, validated one by one, then together."""
    g, positions = unit
    if len(positions) == 1:  # one shard holds these symbols whole: validated as it is
        shard = job.shards[positions[0]]
        panel = read_shard(shard, repair=job.repair)
        symbols = panel.index.get_level_values("symbol")
        check_history(symbols, job.min_bars, str(shard.path))
        return panel.reset_index().assign(**{GROUP: g})
    parts = [_read_one(k, job) for k in positions]
    return _combined(pd.concat(parts, ignore_index=True), job, g)


def _read_one(k: int, job: FeatureJob) -> pd.DataFrame:
    """Shard ``k`` validated on its own, as long rows tagged with ``_shard``."""
    return read_shard(job.shards[k], repair=job.repair).reset_index().assign(**{SHARD: k})


def _combined(long: pd.DataFrame, job: FeatureJob, g: int) -> pd.DataFrame:
    paths = [str(s.path) for s in job.shards]
    panel = combine_shards(long, paths, source=job.source, min_bars=job.min_bars, repair=job.repair)
    return panel.reset_index().assign(**{GROUP: g})


def _combine_rows(
    part: pd.DataFrame, job: FeatureJob, partition_info: dict[str, Any] | None = None
) -> pd.DataFrame:
    """A partition of shard rows shuffled by symbol, validated together."""
    g = int((partition_info or {}).get("number", 0))
    if part.empty:
        return part.drop(columns=[SHARD]).assign(**{GROUP: g})
    return _combined(part, job, g)


def _symbol_span(shard: Shard) -> tuple[str, str, int] | None:
    """(first symbol, last symbol, rows) of a shard from its folder or Parquet statistics;
    ``None`` when they cannot be known without reading it."""
    keys = {canonical_column(k): v for k, v in shard.keys.items()}
    try:
        meta = pq.ParquetFile(shard.path).metadata if file_kind(shard.path) == "parquet" else None
    except Exception:  # unreadable: read_shard will say why, with the file's name
        meta = None
    rows = meta.num_rows if meta is not None else max(1, shard.path.stat().st_size // 64)
    if "symbol" in keys:
        return keys["symbol"], keys["symbol"], rows
    if meta is None:
        return None
    names = [meta.schema.column(j).name for j in range(meta.num_columns)]
    where = [j for j, n in enumerate(names) if canonical_column(n) == "symbol"]
    if not where:  # one symbol, named after the file
        return file_stem(shard.path), file_stem(shard.path), meta.num_rows
    lows, highs = [], []
    for r in range(meta.num_row_groups):
        stats = meta.row_group(r).column(where[0]).statistics
        if stats is None or not stats.has_min_max:
            return None
        lows.append(str(stats.min))
        highs.append(str(stats.max))
    return (min(lows), max(highs), meta.num_rows) if lows else None


def plan_groups(shards: Sequence[Shard], partition_rows: int) -> list[list[int]] | None:
    """Shards grouped into partitions that hold whole symbols, without reading them.

    Shards whose symbol ranges overlap go together; groups are packed to about
    ``partition_rows`` bars.

    Returns:
        Shard positions per partition, or ``None`` when symbols straddle shards too much
        (e.g. ``date=`` folders): they are then shuffled by symbol.
    """
    spans = [_symbol_span(s) for s in shards]
    if any(span is None for span in spans):
        return None
    known = [span for span in spans if span is not None]
    order = sorted(range(len(known)), key=lambda i: known[i][:2])
    clusters: list[list[int]] = []
    high = ""
    for i in order:  # sweep over symbol ranges: overlapping ones share a cluster
        if clusters and known[i][0] <= high:
            clusters[-1].append(i)
            high = max(high, known[i][1])
        else:
            clusters.append([i])
            high = known[i][1]
    rows = [sum(known[i][2] for i in c) for c in clusters]
    if any(n > 2 * partition_rows and len(c) > 1 for n, c in zip(rows, clusters, strict=True)):
        return None
    groups: list[list[int]] = []
    size = 0
    for c, n in zip(clusters, rows, strict=True):
        if not groups or size + n > partition_rows:
            groups.append([])
            size = 0
        groups[-1] += c
        size += n
    return groups


def _panel_groups(panel: pd.DataFrame, partition_rows: int) -> list[pd.DataFrame]:
    """An in-memory Panel cut into long frames of whole symbols, ~``partition_rows`` each."""
    codes, _ = pd.factorize(panel.index.get_level_values("symbol"), sort=True)
    counts = np.bincount(codes)
    group_of = np.minimum(np.cumsum(counts) // max(partition_rows, 1), len(counts) - 1)
    _, group_of = np.unique(group_of, return_inverse=True)  # 0, 1, 2 ... without holes
    rows = group_of[codes]
    long = panel.reset_index()
    return [long[rows == g].assign(**{GROUP: g}) for g in range(int(group_of.max()) + 1)]


def partitions(
    source: Any, job: FeatureJob, partition_rows: int
) -> tuple[dd.DataFrame, FeatureJob]:
    """The source as a Dask frame of validated long rows whose partitions hold whole symbols.

    Args:
        source: A Panel; a partitioned dataset (directory or glob); or anything
            :func:`~alphaforge.data.load_panel` reads (loaded in this process first).
        job: The job; a dataset's shards are added to it.
        partition_rows: Bars per partition, about.

    Returns:
        ``(rows, job)``: rows with ``timestamp, symbol``, the panel's columns and ``_group``
        (the partition number).
    """
    if isinstance(source, str | os.PathLike) and not isinstance(source, pd.DataFrame):
        text = os.fspath(source)
        if not text.startswith(("builtin:", "synthetic:")) and is_dataset(text):
            return _dataset_partitions(text, job, partition_rows)
        source = load_panel(text, min_bars=job.min_bars, repair=job.repair)
    frames = _panel_groups(source, partition_rows)
    rows = dd.from_map(_same, frames, meta=frames[0].iloc[:0], enforce_metadata=False)
    return rows, replace(job, source=str(source.attrs.get("source", job.source)))


def _dataset_partitions(
    source: str, job: FeatureJob, partition_rows: int
) -> tuple[dd.DataFrame, FeatureJob]:
    shards = list_shards(source)
    job = replace(job, shards=tuple(shards), source=source)
    meta = _read_one(0, job).iloc[:0]  # one shard read here: the columns and their dtypes
    groups = plan_groups(shards, partition_rows)
    if groups is not None:
        logger.info(
            "%s: %d shards in %d partitions of whole symbols", source, len(shards), len(groups)
        )
        return (
            dd.from_map(
                _read_group,
                list(enumerate(groups)),
                job=job,
                meta=meta.drop(columns=[SHARD]).assign(**{GROUP: np.int64(0)}),
                enforce_metadata=False,
            ),
            job,
        )
    total = sum(_rows_guess(s) for s in shards)
    n_parts = max(1, math.ceil(total / partition_rows))
    logger.info(
        "%s: symbols span shards; shuffling %d shards into %d partitions",
        source,
        len(shards),
        n_parts,
    )
    rows = dd.from_map(
        _read_one, list(range(len(shards))), job=job, meta=meta, enforce_metadata=False
    )
    by_symbol = rows.shuffle(on="symbol", npartitions=n_parts)
    out_meta = meta.drop(columns=[SHARD]).assign(**{GROUP: np.int64(0)})
    return by_symbol.map_partitions(_combine_rows, job, meta=out_meta), job


def _rows_guess(shard: Shard) -> int:
    span = _symbol_span(shard)
    return span[2] if span is not None else max(1, shard.path.stat().st_size // 64)
