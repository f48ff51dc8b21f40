"""Features of panels bigger than one machine, on a Dask cluster: the numbers ``build_features``
gives, computed partition by partition by the same code.

- **Per symbol** (``build_features(..., cross_section=False)`` on each partition): partitions
  hold whole symbols with their full history. Shards that already do (``symbol=...`` folders,
  files whose symbol ranges do not overlap, read from Parquet statistics) are grouped as they
  are; otherwise the validated shards are shuffled by symbol. A feature at bar t reads its own
  symbol's bars up to t only, so which other symbols share the partition cannot change it.
- **Cross-section** (``CrossSection``, the in-memory kernels): the inputs of the ranks and
  z-scores are shuffled by timestamp, so each partition holds whole cross-sections, and ranked
  on a grid as wide as the whole panel's symbol list, with the grid-or-groupby choice the whole
  panel would make: values are bit-identical to the in-memory build.
- **Assemble**: the cross-sectional columns go back to their symbols' partition (a shuffle by
  partition number) and are joined to the per-symbol columns.

Validation is the in-memory loader's: each shard on its own, then each partition's shards
together (:func:`~alphaforge.data.loader.combine_shards`), with the same errors naming the
shard, symbol, row and value.

:func:`build_feature_dataset` writes a partitioned Parquet dataset: ``part-NNNNN.parquet`` files,
each holding whole symbols, rows sorted by ``(timestamp, symbol)``, columns ``timestamp,
symbol``, the features in ``build_features``' order and an optional ``label``; plus the manifest
``_dataset.json`` (readers skip ``_`` files). It is built in a hidden folder beside the
destination that workers write into (a local disk for a local cluster, a shared file system for
a cluster of machines) and renamed into place at the end. Each task writes its own file
atomically and is a pure function of its inputs, so Dask may rerun any of them after a worker
dies; when Dask gives up, the build stops with :class:`~alphaforge.engines.cluster.ClusterError`
and the hidden folder is removed: a failed or killed build never leaves a half-written dataset.

:func:`dask_build_features` returns the features as one in-memory frame (``experiment_features``
with ``engine: dask``), keeping the per-symbol columns in the cluster's memory meanwhile.

Bit-identity holds for bars on whole minutes; ``minutes_since_open`` of bars with seconds may
differ in the last bit, as it counts minutes from the first timestamp the partition holds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from alphaforge import __version__
from alphaforge.data.loader import resolve_min_bars
from alphaforge.engines.cluster import ClusterSpec, cluster_errors, connect, worker_count
from alphaforge.engines.partition_math import (
    BASE_DIR,
    CODE,
    CS_IN_DIR,
    CS_PARTITION_BYTES,
    FORMAT,
    GROUP,
    KEYS,
    LABEL,
    MANIFEST,
    ROW_GROUP,
    FeatureJob,
    aligned_cross_section,
    cross_section_part,
    cross_sectioned,
    cs_meta,
    empty_meta,
    grid_is_dense,
    keyed,
    symbol_codes,
    symbol_features,
)
from alphaforge.engines.partitions import DEFAULT_PARTITION_ROWS, as_panel, partitions
from alphaforge.errors import DataError, OutputError
from alphaforge.features import build_features
from alphaforge.labels import LabelSpec, make_label
from alphaforge.utils.io import atomic_write, atomic_write_text, make_temp_dir

logger = logging.getLogger(__name__)

__all__ = [
    "LABEL",
    "MANIFEST",
    "FeatureJob",
    "build_feature_dataset",
    "dask_build_features",
    "grid_is_dense",
]

# --------------------------------------------------------------------------- stages on files
_SUMMARY = pd.DataFrame(
    {GROUP: pd.Series(dtype=np.int64), "symbols": pd.Series(dtype=np.int64), "rows": np.int64(0)}
).iloc[:0]
# stage 1's: one row per symbol
_SYMBOLS = pd.DataFrame(
    {GROUP: pd.Series(dtype=np.int64), "symbol": pd.Series(dtype=str), "rows": np.int64(0)}
).iloc[:0]


def _part_path(root: Path, g: int, sub: str | None = None) -> Path:
    return (root / sub if sub else root) / f"part-{g:05d}.parquet"


def _write_table(table: pa.Table, path: Path) -> None:
    if not path.parent.is_dir():  # a failed build removed its folder: never recreate it
        raise FileNotFoundError(f"{path.parent}: the build's folder is gone")
    with atomic_write(path, "wb") as fh:  # a rerun after a worker death rewrites the same file
        # dictionary-encoding float columns costs 5x the write time and saves nothing
        pq.write_table(table, fh, row_group_size=ROW_GROUP, use_dictionary=["symbol"])


def _table(X: pd.DataFrame, extra: dict[str, Any]) -> pa.Table:
    """``timestamp, symbol``, ``X``'s columns and ``extra`` ones as an Arrow table (float
    columns are not copied; NaN stays NaN)."""
    columns = {
        "timestamp": pa.array(X.index.get_level_values("timestamp")),
        "symbol": pa.array(X.index.get_level_values("symbol").astype(str), pa.string()),
    }
    columns.update({c: pa.array(X[c].to_numpy()) for c in X.columns})
    columns.update({c: pa.array(v) for c, v in extra.items()})
    return pa.table(columns)


_STAGES = ("_write_symbol_stage", "_write_assembled")  # the tasks that write files


def _settle(client: Any, timeout: float = 60.0) -> None:
    """Wait until no task of a build that writes files still runs on a worker.

    When Dask gives up on a graph it cancels the tasks not yet started; those already running
    finish in their worker threads. The build's folder is removed only after them.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = [str(k) for keys in client.processing().values() for k in keys]
        except (OSError, TimeoutError):  # the cluster is gone: nothing runs on it any more
            return
        if not any(stage in key for key in running for stage in _STAGES):
            return
        time.sleep(0.05)


def _summary(g: int, n_symbols: int, n_rows: int) -> pd.DataFrame:
    return pd.DataFrame({GROUP: [g], "symbols": [n_symbols], "rows": [n_rows]}).astype(np.int64)


def _write_symbol_stage(part: pd.DataFrame, job: FeatureJob, root: str) -> pd.DataFrame:
    """Per-symbol stage of one partition, written: the output part when no cross-section
    follows, else ``_base/`` (output columns) and ``_cs_in/`` (cross-sectional inputs).

    The output columns are built in the output dtype (rounded once from float64, as in
    memory); the cross-sectional inputs again in float64: a few features built twice, instead
    of every feature held in float64.
    """
    if part.empty:
        return _SYMBOLS
    g, panel = int(part[GROUP].iat[0]), as_panel(part)
    del part
    X = build_features(panel, list(job.base), cross_section=False, dtype=job.dtype)
    extra = {}
    if job.label is not None:
        y = make_label(panel, job.label.kind, job.label.horizon, price=job.label.price)
        extra[LABEL] = y.to_numpy(dtype=np.float64)
    _write_table(_table(X, extra), _part_path(Path(root), g, BASE_DIR if job.cs else None))
    counts = X.index.get_level_values("symbol").value_counts(sort=False)
    summary = pd.DataFrame(
        {GROUP: g, "symbol": counts.index.astype(str), "rows": counts.to_numpy()}
    )
    del X
    if job.cs:
        inputs = build_features(panel, list(job.cs), cross_section=False)  # float64
        _write_table(
            _table(inputs, {GROUP: np.full(len(inputs), g)}), _part_path(Path(root), g, CS_IN_DIR)
        )
    return summary


def _write_assembled(
    part: pd.DataFrame, job: FeatureJob, root: str, symbols: list[str]
) -> pd.DataFrame:
    """Join the cross-sectional columns of the partitions in ``part`` to their per-symbol
    columns and write the output parts."""
    done = [_SUMMARY]
    for g, values in part.groupby(GROUP, sort=True):
        table = pq.read_table(_part_path(Path(root), int(g), BASE_DIR))
        stamps = pd.DatetimeIndex(table["timestamp"].to_pandas()).as_unit("ns").asi8
        codes = symbol_codes(symbols, table["symbol"].to_numpy())
        for name, column in aligned_cross_section(stamps, codes, values, job).items():
            table = table.append_column(name, pa.array(column))
        _write_table(table.select(job.outputs(job.cs)), _part_path(Path(root), int(g)))
        done.append(_summary(int(g), len(np.unique(codes)), len(codes)))
    return pd.concat(done, ignore_index=True)


def _cross_section_on_files(
    root: Path, job: FeatureJob, stage1: pd.DataFrame, n_workers: int
) -> pd.DataFrame:
    """Stages 2 and 3 over the files of stage 1: rank by timestamp, join back by partition."""
    cs_in = dd.read_parquet(str(root / CS_IN_DIR))
    symbols = sorted(str(s) for s in stage1["symbol"])
    n_rows, n_groups = int(stage1["rows"].sum()), int(stage1[GROUP].nunique())
    n_timestamps = int(cs_in["timestamp"].nunique().compute())
    dense = grid_is_dense(n_timestamps, len(symbols), n_rows)
    width = (len(job.cs) + 3) * 8
    n_parts = max(n_workers, math.ceil(n_rows * width / CS_PARTITION_BYTES))
    ranked = cs_in.shuffle(on="timestamp", npartitions=n_parts).map_partitions(
        cross_section_part,
        job.cs,
        symbols,
        dense,
        job.dtype,
        meta=cs_meta(cs_in, job.cs, job.dtype),
    )
    written = ranked.shuffle(on=GROUP, npartitions=n_groups).map_partitions(
        _write_assembled, job, str(root), symbols, meta=_SUMMARY
    )
    return written.compute()


def _finish(root: Path, job: FeatureJob, cs: Sequence[str], parts: pd.DataFrame) -> dict[str, Any]:
    """Drop mid-build files and temporaries left by killed writers; write the manifest."""
    for sub in (BASE_DIR, CS_IN_DIR):
        shutil.rmtree(root / sub, ignore_errors=True)
    for left in root.glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            left.unlink()
    parts = parts.sort_values(GROUP)
    manifest = {
        "format": FORMAT,
        "format_version": 1,
        "alphaforge_version": __version__,
        "source": job.source,
        "columns": job.columns(cs),
        "label": None if job.label is None else asdict(job.label),
        "dtype": job.dtype,
        "n_rows": int(parts["rows"].sum()),
        "n_symbols": int(parts["symbols"].sum()),
        "parts": [
            {"file": _part_path(Path(), int(g), None).name, "rows": int(n), "symbols": int(k)}
            for g, k, n in parts[[GROUP, "symbols", "rows"]].itertuples(index=False)
        ],
    }
    atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def _build_files(
    source: Any, job: FeatureJob, root: Path, client: Any, partition_rows: int
) -> dict[str, Any]:
    rows, job = partitions(source, job, partition_rows)
    stage1 = rows.map_partitions(_write_symbol_stage, job, str(root), meta=_SYMBOLS).compute()
    by_part = stage1.groupby(GROUP, as_index=False).agg(
        symbols=("symbol", "size"), rows=("rows", "sum")
    )
    cs = cross_sectioned(job, len(stage1))
    if not job.cs:
        return _finish(root, job, cs, by_part)
    if not cs:  # one symbol: the per-symbol parts are the output
        for g in by_part[GROUP]:
            os.replace(_part_path(root, int(g), BASE_DIR), _part_path(root, int(g)))
        return _finish(root, job, cs, by_part)
    written = _cross_section_on_files(root, job, stage1, worker_count(client))
    missing = sorted(set(by_part[GROUP]) - set(written[GROUP]))
    if missing:  # cannot happen unless a stage lost rows: refuse to publish
        raise DataError(f"partitions {missing} were not written", path=job.source)
    return _finish(root, job, cs, written)


# --------------------------------------------------------------------------- public entry points
@contextlib.contextmanager
def _client_for(client: Any, cluster: ClusterSpec | None) -> Iterator[Any]:
    if client is not None:
        yield client
        return
    with connect(cluster) as opened:
        yield opened


def build_feature_dataset(
    source: Any,
    out: str | os.PathLike[str],
    names: Sequence[str] | None = None,
    *,
    label: LabelSpec | None = None,
    min_bars: int | str | None = "auto",
    repair: bool = False,
    overwrite: bool = False,
    partition_rows: int = DEFAULT_PARTITION_ROWS,
    client: Any = None,
    cluster: ClusterSpec | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Build the features of a panel on a Dask cluster and write them as a partitioned dataset.

    Args:
        source: A partitioned dataset (directory or glob of shards), any other
            :func:`~alphaforge.data.load_panel` source (read in this process), or a Panel.
        out: Destination directory (see the module docstring for its layout).
        names: As for :func:`~alphaforge.features.build_features`.
        label: Also write this (raw) label as column ``label``, e.g. for
            :func:`~alphaforge.engines.dask_trees.fit_on_dataset`.
        min_bars, repair: As for :func:`~alphaforge.data.load_panel`.
        overwrite: Replace ``out`` if it exists and is not empty.
        partition_rows: Bars per per-symbol partition (whole symbols, so about): the unit of
            work and of worker memory (about 3x its features' bytes at the peak).
        client: A ``distributed.Client``; ``None``: per ``cluster``.
        cluster: Cluster to use when no client is given (default: the open client, else a
            local cluster started for the call).
        **options: ``catalogue``, ``cross_section``, ``cs_features``, ``dtype``: as for
            :func:`~alphaforge.features.build_features`, whose values the dataset holds.

    Returns:
        The manifest written to ``out/_dataset.json``.

    Raises:
        OutputError: ``out`` exists and is not empty, without ``overwrite``.
        DataError: invalid data, naming the shard, symbol, row and value.
        ConfigError: unknown feature names or catalogue.
        ClusterError: the cluster is unreachable or gave up; nothing was written.
    """
    out = Path(out)
    if out.exists() and (out.is_file() or any(out.iterdir())) and not overwrite:
        raise OutputError(f"{out} exists and is not empty; pass --overwrite to replace it")
    job = FeatureJob.resolve(
        names,
        options,
        label=label,
        min_bars=resolve_min_bars(min_bars),  # type: ignore[arg-type]
        repair=repair,
        source=_name(source),
    )
    with _client_for(client, cluster) as c:
        root = make_temp_dir(out)  # hidden, beside out; a killed build's is swept by the next
        for sub in (BASE_DIR, CS_IN_DIR):
            (root / sub).mkdir()  # tasks write into these, never create them
        try:
            with cluster_errors(f"features of {job.source}"):
                manifest = _build_files(source, job, root, c, partition_rows)
            _publish(root, out)
        except BaseException:
            _settle(c)
            shutil.rmtree(root, ignore_errors=True)
            raise
    logger.info("wrote %s: %d rows in %d parts", out, manifest["n_rows"], len(manifest["parts"]))
    return manifest


def _name(source: Any) -> str:
    return "<DataFrame>" if isinstance(source, pd.DataFrame) else str(source)


def _publish(root: Path, out: Path) -> None:
    """Rename the finished build into place (an existing ``out`` is moved aside first)."""
    old = None
    if out.exists() or out.is_symlink():
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(out, old)
    os.replace(root, out)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


def dask_build_features(
    source: Any,
    names: Sequence[str] | None = None,
    *,
    partition_rows: int = DEFAULT_PARTITION_ROWS,
    client: Any = None,
    cluster: ClusterSpec | None = None,
    **options: Any,
) -> pd.DataFrame:
    """``build_features`` computed on a Dask cluster, returned as one in-memory frame.

    Args:
        source: A Panel (its index is the result's), a partitioned dataset or any other
            :func:`~alphaforge.data.load_panel` source.
        names: As for :func:`~alphaforge.features.build_features`.
        partition_rows, client, cluster: As for :func:`build_feature_dataset`.
        **options: ``catalogue``, ``cross_section``, ``cs_features``, ``dtype``: as for
            :func:`~alphaforge.features.build_features`.

    Returns:
        The frame ``build_features`` returns for the same panel: same index, columns, values
        and NaNs.
    """
    job = FeatureJob.resolve(names, options, source=_name(source))
    with _client_for(client, cluster) as c, cluster_errors(f"features of {job.source}"):
        rows, job = partitions(source, job, partition_rows)
        meta = empty_meta(rows, [*KEYS, GROUP], job.needed)
        base = rows.map_partitions(_memory_symbol_stage, job, meta=meta).persist()
        n_symbols = int(base["symbol"].nunique().compute())
        cs = cross_sectioned(job, n_symbols)
        if cs:
            symbols = sorted(str(s) for s in base["symbol"].unique().compute())
            n_rows, n_timestamps = (
                int(base.shape[0].compute()),
                int(base["timestamp"].nunique().compute()),
            )
            dense = grid_is_dense(n_timestamps, len(symbols), n_rows)
            n_parts = max(worker_count(c), base.npartitions)
            ranked = base[[*KEYS, GROUP, *cs]].shuffle(on="timestamp", npartitions=n_parts)
            ranked = ranked.map_partitions(
                cross_section_part, cs, symbols, dense, meta=cs_meta(base, cs, "float64")
            )
            codes = base["symbol"].map_partitions(_codes, symbols, meta=(CODE, np.int32))
            coded = base.assign(**{CODE: codes})
            base = coded.merge(ranked.drop(columns=[GROUP]), on=["timestamp", CODE], how="left")
        frame = base.compute()
    return _to_features(frame, job, cs, source)


def _memory_symbol_stage(part: pd.DataFrame, job: FeatureJob) -> pd.DataFrame:
    if part.empty:
        return pd.concat([part[[*KEYS, GROUP]], pd.DataFrame(columns=job.needed, dtype=float)])
    frame = symbol_features(as_panel(part), job)
    frame.insert(len(KEYS), GROUP, np.int64(part[GROUP].iat[0]))  # the meta's column order
    return frame


def _codes(column: pd.Series, symbols: list[str]) -> pd.Series:
    return pd.Series(symbol_codes(symbols, column), index=column.index)


def _to_features(
    frame: pd.DataFrame, job: FeatureJob, cs: Sequence[str], source: Any
) -> pd.DataFrame:
    """Gathered long rows as ``build_features``' frame: sorted Panel index, ordered columns."""
    keys = keyed(frame)
    columns = job.columns(cs)
    values = frame[columns].to_numpy(dtype=job.dtype)
    if isinstance(source, pd.DataFrame):
        index = source.index
        where = keys.get_indexer(index)
        if len(keys) != len(index) or (where < 0).any():
            raise DataError("Dask features do not cover the panel's bars", path=job.source)
    else:
        codes, _ = pd.factorize(keys.get_level_values("symbol"), sort=True)
        where = np.lexsort((codes, keys.get_level_values("timestamp").asi8))
        index = keys[where]
    return pd.DataFrame(values[where], index=index, columns=columns)
