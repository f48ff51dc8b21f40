"""Engines: where features, trees and shards are computed, chosen at this one switch.

- ``memory`` (the default): one process, the panel and its features in its memory.
- ``dask``: a Dask distributed cluster, an existing one or a local one started for the job.
  Features: :mod:`~alphaforge.engines.dask_features` (per-symbol partitions, a shuffle by
  timestamp for the cross-section, equal values); trees: :mod:`~alphaforge.engines.dask_trees`
  (``lightgbm.dask`` and ``xgboost.dask``); networks read the feature dataset's shards rank by
  rank (:mod:`~alphaforge.engines.shards`).

The math lives once: the Dask path calls the in-memory feature code on each partition and the
tree libraries' own Dask training with the in-memory models' parameters. Its modules load on
first use, as the registry loads models: ``dask.dataframe`` and ``lightgbm.dask`` cost about a
second to import, which in-memory runs do not pay.

In an experiment config::

    engine: dask
    cluster: {scheduler: tcp://10.0.0.5:8786}   # or {workers: 4, memory_limit: 4GB}: local
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphaforge.data import load_panel
from alphaforge.engines.cluster import ClusterError, ClusterSpec, connect, current_client
from alphaforge.errors import ConfigError
from alphaforge.features import build_features
from alphaforge.utils.io import atomic_write

if TYPE_CHECKING:
    from alphaforge.config import ExperimentConfig

logger = logging.getLogger(__name__)

__all__ = [
    "ENGINES",
    "ClusterError",
    "ClusterSpec",
    "cluster_spec",
    "engine_members",
    "engine_session",
    "features_for",
    "write_features",
]

#: Valid values of ``engine`` (config key, ``--engine``).
ENGINES: tuple[str, ...] = ("memory", "dask")

# in-memory tree class -> its Dask-trained subclass, "module:attribute" (loaded on use)
_DASK_TREES = {
    "alphaforge.models.trees:LightGBMForecaster": (
        "alphaforge.engines.dask_trees:DaskLightGBMForecaster"
    ),
    "alphaforge.models.trees:XGBoostForecaster": (
        "alphaforge.engines.dask_trees:DaskXGBoostForecaster"
    ),
}
_DASK_FEATURES = "alphaforge.engines.dask_features"


def _load(target: str) -> Any:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def check_engine(engine: str) -> str:
    """``engine`` if it is one of :data:`ENGINES`.

    Raises:
        ConfigError: naming the valid engines.
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; valid engines: {', '.join(ENGINES)}")
    return engine


def cluster_spec(cfg: ExperimentConfig) -> ClusterSpec:
    """The :class:`ClusterSpec` of an experiment's ``cluster`` section."""
    return ClusterSpec(**cfg.cluster.model_dump())


@contextlib.contextmanager
def engine_session(cfg: ExperimentConfig) -> Iterator[None]:
    """The cluster of an experiment, open while the block runs (nothing for ``memory``).

    With ``engine: dask`` every feature build and tree fit inside the block uses the one
    cluster: the ``cluster.scheduler`` one, the client already open in this process, or a local
    cluster started here and stopped at the end.

    Raises:
        ClusterError: the scheduler cannot be reached.
    """
    if check_engine(cfg.engine) == "memory":
        yield
        return
    with connect(cluster_spec(cfg)):
        yield


def features_for(cfg: ExperimentConfig) -> Callable[..., pd.DataFrame]:
    """The ``build_features`` of the experiment's engine (same arguments, same result).

    ``memory``: :func:`~alphaforge.features.build_features` itself; ``dask``:
    :func:`~alphaforge.engines.dask_features.dask_build_features` on the client open when it is
    called (the session's, see :func:`engine_session`), else on a cluster opened for the call
    per ``cluster``.
    """
    if check_engine(cfg.engine) == "memory":
        return build_features
    build = _load(f"{_DASK_FEATURES}:dask_build_features")
    spec = cluster_spec(cfg)

    def dask_features(*args: Any, **kwargs: Any) -> pd.DataFrame:
        client = current_client()
        return build(*args, client=client, cluster=None if client else spec, **kwargs)

    return dask_features


def engine_members(members: Sequence[Any], cfg: ExperimentConfig) -> list[Any]:
    """A run's members with the engine's tree classes: under ``dask``, plain ``lightgbm`` and
    ``xgboost`` members train through their libraries' Dask interfaces.

    Args:
        members: Run members (dataclasses with a ``factory`` class and a ``config``).
        cfg: The experiment.

    Returns:
        The members, those switched to Dask training replaced (ensembles, several seeds and
        per-symbol models keep the in-memory classes of their members).
    """
    if check_engine(cfg.engine) == "memory":
        return list(members)
    out = []
    for m in members:
        target = f"{m.factory.__module__}:{m.factory.__qualname__}"
        plain = m.config.seeds == 1 and m.config.params_from is None
        if plain and target in _DASK_TREES:
            logger.info("engine dask: %s trains on the Dask cluster", m.config.display)
            m = dataclasses.replace(m, factory=_load(_DASK_TREES[target]))
        out.append(m)
    return out


def write_features(
    source: Any,
    out: str | Path,
    *,
    engine: str = "memory",
    cluster: ClusterSpec | None = None,
    names: Sequence[str] | None = None,
    cross_section: bool = True,
    dtype: npt.DTypeLike = np.float64,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Build a panel's features and write them, by engine (``alphaforge features``).

    Args:
        source: Anything :func:`~alphaforge.data.load_panel` reads, a partitioned dataset
            included.
        out: ``memory``: one Parquet file (``timestamp, symbol``, features); ``dask``: a
            partitioned dataset directory (see :mod:`~alphaforge.engines.dask_features`).
        engine: One of :data:`ENGINES`.
        cluster: ``dask`` only: the cluster (default: a local one for the call).
        names, cross_section, dtype: As for :func:`~alphaforge.features.build_features`.
        overwrite: ``dask``: replace a non-empty ``out`` (a file is always replaced).

    Returns:
        ``{"rows", "columns", "parts"}``: what was written (``parts``: 1 for a file).

    Raises:
        ConfigError: unknown engine or feature names; ``cluster`` with ``memory``.
        OutputError, DataError, ClusterError: see the engines' builders.
    """
    if check_engine(engine) == "dask":
        build = _load(f"{_DASK_FEATURES}:build_feature_dataset")
        manifest = build(
            source,
            out,
            names,
            cross_section=cross_section,
            dtype=dtype,
            overwrite=overwrite,
            cluster=cluster,
        )
        return {
            "rows": manifest["n_rows"],
            "columns": len(manifest["columns"]),
            "parts": len(manifest["parts"]),
        }
    if cluster is not None and cluster != ClusterSpec():
        raise ConfigError(
            "a scheduler or workers are for --engine dask; the memory engine has none"
        )
    X = build_features(load_panel(source), names, cross_section=cross_section, dtype=dtype)
    with atomic_write(out, "wb") as fh:
        X.reset_index().to_parquet(fh, index=False)
    return {"rows": X.shape[0], "columns": X.shape[1], "parts": 1}
