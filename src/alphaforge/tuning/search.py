"""The search: worker processes running Optuna studies, and a live view of them.

One Optuna study per ``(symbol, model)`` named ``"{symbol}:{model}"`` (:func:`study_name`). One
worker runs in the calling process; several are separate ``spawn`` processes that share the
studies through the storage (journal file or PostgreSQL), each sampling with TPE seeded
``seed + worker``. :func:`study_status` reads every study's trial counts and scores from the
storage while they run.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from alphaforge.errors import AlphaforgeError
from alphaforge.tuning.config import TuneConfig, resolve_models
from alphaforge.tuning.gate import Direction
from alphaforge.tuning.objective import PRUNE_EVERY, make_objective
from alphaforge.tuning.storage import StorageSpec, open_storage
from alphaforge.tuning.windows import SymbolData, prepare

__all__ = [
    "Progress",
    "StudyMonitor",
    "StudyStatus",
    "TuneJob",
    "prepare_config",
    "run_worker",
    "search",
    "spawn_worker",
    "study_name",
    "study_status",
]

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int, str], None]
"""``progress(stage, done, total, description)``, called after each trial / study."""


def study_name(symbol: str, model: str) -> str:
    """``"{symbol}:{model}"``, the name of one study."""
    return f"{symbol}:{model}"


@dataclass
class StudyStatus:
    """Live state of one study, read from the storage while the search runs.

    Attributes:
        study: ``"{symbol}:{model}"``.
        complete: Completed trials (all runs together).
        pruned: Trials the pruner stopped.
        failed: Failed trials.
        running: Trials running now (or left RUNNING by a dead worker, until swept).
        best: Best completed value (None: none yet).
        last: Value of the most recently finished complete trial.
    """

    study: str
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    best: float | None = None
    last: float | None = None


def study_status(
    storage: optuna.storages.BaseStorage | StorageSpec | str, names: Sequence[str]
) -> list[StudyStatus]:
    """One :class:`StudyStatus` per study name (zeros for a study not created yet).

    Args:
        storage: An open storage, a :class:`StorageSpec` or a storage string.
        names: Study names, ``"{symbol}:{model}"``.
    """
    if isinstance(storage, (StorageSpec, str)):
        storage = open_storage(storage)
    out = []
    for name in names:
        st = StudyStatus(name)
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            out.append(st)
            continue
        done = []
        for t in study.get_trials(deepcopy=False):
            if t.state == TrialState.COMPLETE:
                done.append(t)
            st.pruned += t.state == TrialState.PRUNED
            st.failed += t.state == TrialState.FAIL
            st.running += t.state == TrialState.RUNNING
        st.complete = len(done)
        if done:
            pick = min if study.direction == optuna.study.StudyDirection.MINIMIZE else max
            st.best = float(pick(t.value for t in done))
            st.last = float(max(done, key=lambda t: t.datetime_complete).value)
        out.append(st)
    return out


@dataclass(frozen=True)
class TuneJob:
    """Everything one worker process needs (picklable for ``spawn``).

    Attributes:
        config: The run's options, resolved: ``symbols`` and ``model`` list the studies' keys,
            ``fixed_params`` holds each model's fixed params.
        storage: The storage every worker opens.
        direction: The metric's direction.
        deadline: ``time.time()`` after which no study starts (None: no limit).
    """

    config: TuneConfig
    storage: StorageSpec
    direction: Direction
    deadline: float | None = None

    @property
    def symbols(self) -> list[str]:
        """Symbols to tune, in order."""
        return list(self.config.symbols or [])

    @property
    def models(self) -> list[str]:
        """Registry names to tune, in order."""
        return resolve_models(self.config.model)

    @property
    def study_names(self) -> list[str]:
        """Every study of the job, symbol-major."""
        return [study_name(s, m) for s in self.symbols for m in self.models]


def prepare_config(config: TuneConfig) -> dict[str, SymbolData]:
    """:func:`~alphaforge.tuning.prepare` the config's data, symbols, label and windows."""
    c = config
    return prepare(
        c.data,
        c.symbols,
        label=c.label,
        horizon=c.horizon,
        features=c.features,
        val=c.val,
        test=c.test,
        folds=c.folds,
        stop=c.stop,
    )


def run_worker(
    job: TuneJob,
    worker: int,
    n_trials: int,
    on_trial: Callable[[str, int], None] | None = None,
    prepared: Mapping[str, SymbolData] | None = None,
) -> None:
    """Run ``n_trials`` trials of every study in ``job``; the body of one worker process.

    Args:
        job: What to tune and where.
        worker: Worker index; the TPE seed is ``job.config.seed + worker``.
        n_trials: New trials per study for this worker.
        on_trial: Called with ``(study_name, trial_number)`` after each trial (main process
            only).
        prepared: Data already cut by :func:`~alphaforge.tuning.prepare` (in-process); None:
            prepare it here.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    c = job.config
    prepared = prepared or prepare_config(c)
    storage = open_storage(job.storage)
    for symbol in job.symbols:
        for model in job.models:
            name = study_name(symbol, model)
            remaining = None if job.deadline is None else job.deadline - time.time()
            if remaining is not None and remaining <= 0:
                return
            study = optuna.create_study(
                storage=storage,
                study_name=name,
                direction=job.direction,
                load_if_exists=True,
                sampler=optuna.samplers.TPESampler(seed=c.seed + worker),
                pruner=(
                    optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5 * PRUNE_EVERY)
                    if c.prune
                    else optuna.pruners.NopPruner()
                ),
            )
            objective = make_objective(
                model, prepared[symbol], c.metric, c.fixed_params.get(model, {}), c.seed, c.prune
            )
            callbacks = [] if on_trial is None else [lambda s, t, n=name: on_trial(n, t.number)]
            study.optimize(
                objective,
                n_trials=n_trials,
                timeout=remaining,
                catch=(AlphaforgeError, ValueError, FloatingPointError),
                callbacks=callbacks,
            )


def spawn_worker(job: TuneJob, worker: int, n_trials: int) -> None:
    """Entry point of a ``spawn`` worker process: :func:`run_worker` with warnings logged."""
    logging.basicConfig(level=logging.WARNING)
    run_worker(job, worker, n_trials)


def _split_trials(trials: int, workers: int) -> list[int]:
    return [trials // workers + (i < trials % workers) for i in range(workers)]


class StudyMonitor:
    """Reads study states from the storage for a ``monitor`` callback, at most every ``every`` s.

    Args:
        fn: Called with every study's :class:`StudyStatus`.
        storage: Where the studies live.
        names: Study names.
        every: Least seconds between two reads, unless forced.
    """

    def __init__(
        self,
        fn: Callable[[list[StudyStatus]], None],
        storage: StorageSpec,
        names: Sequence[str],
        every: float = 0.5,
    ) -> None:
        self.fn, self.spec, self.names, self.every = fn, storage, list(names), every
        self.storage: optuna.storages.BaseStorage | None = None
        self.last = -math.inf

    def __call__(self, force: bool = False) -> None:
        """Read and report the studies' states (at most every ``every`` s unless ``force``)."""
        if not force and time.monotonic() - self.last < self.every:
            return
        if self.storage is None:
            self.storage = open_storage(self.spec)
        self.fn(study_status(self.storage, self.names))
        self.last = time.monotonic()


def search(
    job: TuneJob,
    progress: Progress | None = None,
    prepared: Mapping[str, SymbolData] | None = None,
    monitor: StudyMonitor | None = None,
) -> None:
    """Run ``job.config.trials`` new trials per study with ``job.config.workers`` workers.

    One worker runs here (reusing ``prepared``); several run as ``spawn`` processes sharing the
    trials, terminated if this process is interrupted. A worker that dies is logged; its RUNNING
    trials are left for the sweeper.

    Args:
        job: What to tune and where.
        progress: ``progress("trials", done, total, description)``.
        prepared: The job's data, already cut (one worker only).
        monitor: Polled while the workers run, and once at the end.
    """
    trials, workers = job.config.trials, job.config.workers
    total = len(job.study_names) * trials
    if workers == 1:
        done = [0]

        def on_trial(name: str, _number: int) -> None:
            done[0] += 1
            if progress:
                progress("trials", done[0], total, name)
            if monitor is not None:
                monitor(force=done[0] == total)

        run_worker(job, 0, trials, on_trial, prepared)
        return
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=spawn_worker, args=(job, i, n), daemon=False)
        for i, n in enumerate(_split_trials(trials, workers))
        if n > 0
    ]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=1.0 / len(procs))
            if monitor is not None:
                monitor()
        if monitor is not None:
            monitor(force=True)
    except BaseException:
        for p in procs:
            p.terminate()
            p.join()
        raise
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad:
        logger.warning(
            "%d of %d workers exited abnormally (exit codes %s); their RUNNING "
            "trials are marked FAIL",
            len(bad),
            len(procs),
            bad,
        )
    if progress:
        progress("trials", total, total, f"{len(procs)} workers")
