""":func:`tune`: search every ``(symbol, model)``, then promote improved configs.

Storage (DESIGN.md §3 "Tuning storage"): one worker -> SQLite file ``root/optuna.db``; several
workers on one machine -> Optuna's journal file ``root/optuna.journal``; ``postgresql://...`` ->
RDB storage with heartbeats and retry of trials whose worker died. Before and after the workers
run, a sweeper repairs a torn journal tail and marks trials left RUNNING by dead workers as FAIL.
Each run also logs to ``root/logs/tune_{timestamp}.log``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alphaforge.errors import ConfigError
from alphaforge.metrics import get_metric
from alphaforge.registry import get_model
from alphaforge.tuning.config import TuneConfig, make_tune_config, resolve_models
from alphaforge.tuning.results import TuneSummary, finish_study, write_summary
from alphaforge.tuning.search import (
    Progress,
    StudyMonitor,
    StudyStatus,
    TuneJob,
    prepare_config,
    search,
)
from alphaforge.tuning.storage import resolve_storage, sweep
from alphaforge.tuning.windows import SymbolData
from alphaforge.utils.io import remove_stale_temp
from alphaforge.utils.locks import remove_free_locks

__all__ = ["tune"]

logger = logging.getLogger(__name__)


def tune(
    config: TuneConfig | Mapping[str, Any] | None = None,
    *,
    progress: Progress | None = None,
    monitor: Callable[[list[StudyStatus]], None] | None = None,
    **options: Any,
) -> TuneSummary:
    """Tune every ``(symbol, model)`` pair, then promote improved configs.

    For each symbol the labelled bars are cut into walk-forward validation folds and a held-out
    test window (:func:`~alphaforge.tuning.cut_windows`): a trial fits on the past of each fold,
    early-stops on the bars just before it and scores the fold; the test window is scored once,
    for the study's best params. Every option is a field of :class:`TuneConfig` (see its
    descriptions for units and defaults); ``min_improvement`` is a percent (``1.0`` = 1%).

    Args:
        config: A :class:`TuneConfig`, a mapping of its options (e.g. parsed YAML) or None.
        progress: ``progress(stage, done, total, description)`` after each trial / study.
        monitor: Called with every study's :class:`StudyStatus` while the search runs (after
            a trial with one worker, about twice a second with several; read from the storage).
        **options: :class:`TuneConfig` options over ``config``'s, e.g.
            ``tune(data="builtin:us-stocks-5", model="lightgbm", trials=20, root="tuning")``.

    Returns:
        A :class:`~alphaforge.tuning.TuneSummary`; also written to
        ``root/results/tune_{timestamp}.json``.

    Raises:
        ConfigError: Unknown option, missing ``data``, unknown model or metric, bad counts,
            SQLite with several workers.
        DataError: Unsafe or missing symbol, too few bars.
    """
    started = time.time()
    cfg = make_tune_config(config, **options)
    if cfg.data is None:
        raise ConfigError(
            "tune option 'data' is required (a file, builtin:NAME, synthetic:... or a DataFrame)"
        )
    models = resolve_models(cfg.model)
    direction = get_metric(cfg.metric).direction
    root = Path(cfg.root).resolve()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    log_path = root / "logs" / f"tune_{stamp}.log"
    with _log_to(log_path):
        storage = resolve_storage(cfg.storage, root, cfg.workers)
        prepared = prepare_config(cfg)
        _remove_stale_temp(root)
        resolved = make_tune_config(
            cfg,
            symbols=list(prepared),
            model=models,
            root=root,
            fixed_params=_fixed_params(cfg, models),
        )
        deadline = None if cfg.timeout is None else started + cfg.timeout
        job = TuneJob(resolved, storage, direction, deadline)
        logger.info(
            "tune: %d studies, %d trials each, %d workers, storage %s",
            len(job.study_names),
            cfg.trials,
            cfg.workers,
            storage,
        )
        sweep(storage, job.study_names)
        search(
            job,
            progress,
            prepared,
            None if monitor is None else StudyMonitor(monitor, storage, job.study_names),
        )
        sweep(storage, job.study_names)  # trials of workers that died during this run
        summary = _gate(job, prepared, root, stamp, progress)
        summary.wall_s = time.time() - started
        summary.log_path = log_path
        write_summary(summary)
        logger.info(
            "tune: %d of %d promoted in %.1f s",
            summary.n_promoted,
            len(summary.results),
            summary.wall_s,
        )
        return summary


def _gate(
    job: TuneJob,
    prepared: Mapping[str, SymbolData],
    root: Path,
    stamp: str,
    progress: Progress | None,
) -> TuneSummary:
    """Finish every study (test score, records, promotion gate) into a summary."""
    results = []
    names = job.study_names
    for i, (s, m) in enumerate((s, m) for s in job.symbols for m in job.models):
        t0 = time.time()
        results.append(finish_study(s, m, prepared[s], job, root, stamp))
        results[-1].wall_s = time.time() - t0
        if progress:
            progress("promotion gate", i + 1, len(names), f"{s} {m}")
    c = job.config
    return TuneSummary(
        results,
        c.metric,
        job.direction,
        job.storage.url,
        c.workers,
        c.trials,
        0.0,
        stamp,
        root / "results" / f"tune_{stamp}.json",
    )


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """Copy the package's log records (INFO and up) to ``path`` for the duration."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    pkg = logging.getLogger("alphaforge")
    old_level = pkg.level
    pkg.addHandler(handler)
    if pkg.getEffectiveLevel() > logging.INFO:
        pkg.setLevel(logging.INFO)
    try:
        yield
    finally:
        pkg.removeHandler(handler)
        pkg.setLevel(old_level)
        handler.close()


def _remove_stale_temp(root: Path) -> None:
    """Remove temporary files and free lock files left under ``hyperparams/`` and ``results/``
    by a killed run."""
    for sub in ("hyperparams", "results"):
        for path in remove_stale_temp(root / sub):
            logger.info("removed %s, left by a killed writer", path)
    best = root / "hyperparams" / "best"
    if best.is_dir():
        remove_free_locks(best)


def _n_jobs_default(model: str, workers: int) -> dict[str, Any]:
    """``{"n_jobs": cores // workers}`` for models with an ``n_jobs`` option, else ``{}``."""
    cfg = getattr(get_model(model), "Config", None)
    fields = getattr(cfg, "__dataclass_fields__", {})
    # share the cores between workers instead of each taking them all
    return {"n_jobs": max(1, (os.cpu_count() or 1) // workers)} if "n_jobs" in fields else {}


def _fixed_params(cfg: TuneConfig, models: list[str]) -> dict[str, dict[str, Any]]:
    """Each model's fixed params: the thread default, then ``cfg.fixed_params`` over it."""
    return {
        m: {**_n_jobs_default(m, cfg.workers), **dict(cfg.fixed_params.get(m, {}))} for m in models
    }
