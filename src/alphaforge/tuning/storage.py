"""Optuna storages for tuning, and the sweeper that cleans up after killed workers.

One worker: SQLite. Several workers on one machine: Optuna's journal file (SQLite is not safe
under parallel writers). Several machines: ``postgresql://...`` with heartbeats; a trial whose
worker stops beating is failed and retried once. Journal and SQLite have no heartbeats, so each
trial records its owner (``host:pid``) and :func:`sweep` fails RUNNING trials of dead local
owners, after cutting a torn last record (a writer killed mid-append) off the journal.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from alphaforge.errors import ConfigError

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

OWNER_ATTR = "alphaforge_worker"  # "host:pid" of the process running a trial
STALE_UNOWNED_S = 60.0  # a RUNNING trial with no owner this old is from a dead worker
JOURNAL_LOCK_GRACE_S = 5  # seconds before a journal lock left by a dead writer is broken


def resolve_storage(storage: str | None, root: Path, workers: int) -> str:
    """The storage spec every worker opens: an RDB URL or ``journal:PATH``.

    Raises:
        ConfigError: SQLite with several workers (not safe under parallel writers).
    """
    if storage is None:
        return (f"sqlite:///{root / 'optuna.db'}" if workers == 1
                else f"journal:{root / 'optuna.journal'}")
    if storage.endswith(".journal") and not storage.startswith("journal:"):
        storage = f"journal:{storage}"
    if storage.startswith("sqlite") and workers > 1:
        raise ConfigError(f"storage {storage!r}: SQLite is not safe with {workers} workers; use "
                          "a journal file (PATH.journal) or postgresql://...")
    return storage


def open_storage(spec: str) -> optuna.storages.BaseStorage:
    """Open the storage named by :func:`resolve_storage` (PostgreSQL: heartbeat + retry)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock, JournalStorage

    if spec.startswith("journal:"):
        path = spec.removeprefix("journal:")
        # appends take milliseconds: a lock older than a few seconds belongs to a killed worker
        lock = JournalFileSymlinkLock(path, grace_period=JOURNAL_LOCK_GRACE_S)
        return JournalStorage(JournalFileBackend(path, lock_obj=lock))
    if spec.startswith("postgresql"):
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # a trial whose worker stops beating for grace_period is failed and re-queued once
            if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):  # Optuna >= 4.9
                retry = {"heartbeat_stale_trial_callback":
                         optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)}
            else:
                retry = {"failed_trial_callback":
                         optuna.storages.RetryFailedTrialCallback(max_retry=1)}
            return optuna.storages.RDBStorage(spec, heartbeat_interval=10, grace_period=60,
                                              engine_kwargs={"pool_pre_ping": True}, **retry)
    return optuna.storages.RDBStorage(spec)


def repair_journal(path: Path) -> int:
    """Cut a torn last line (a writer killed mid-append) off a journal file.

    Returns:
        Bytes removed (0 when the file is intact or missing).
    """
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    logger.warning("%s: removed a torn last record (%d bytes)", path, len(data) - keep)
    return len(data) - keep


def _owner_alive(owner: str | None) -> bool:
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine: only heartbeats (PostgreSQL) can judge it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(study: optuna.Study) -> int:
    """Mark RUNNING trials of dead local workers (or unowned and old) as FAIL.

    Returns:
        Number of trials failed.
    """
    from optuna.trial import TrialState

    n = 0
    now = datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get(OWNER_ATTR)
        age = (now - t.datetime_start).total_seconds() if t.datetime_start else math.inf
        if (owner is None and age < STALE_UNOWNED_S) or _owner_alive(owner):
            continue
        try:
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            n += 1
        except RuntimeError:  # finished meanwhile
            continue
    if n:
        logger.warning("study %s: marked %d trials of dead workers FAIL", study.study_name, n)
    return n


def sweep(spec: str, study_names: Sequence[str]) -> int:
    """Repair the journal tail and fail stale trials in every existing study of ``study_names``."""
    import optuna

    if spec.startswith("journal:"):
        repair_journal(Path(spec.removeprefix("journal:")))
    if spec.startswith("postgresql"):
        return 0  # heartbeats fail stale trials there; pids of other machines mean nothing
    storage = open_storage(spec)
    existing = {s.study_name for s in storage.get_all_studies()}
    total = 0
    for name in study_names:
        if name in existing:
            total += sweep_stale(optuna.load_study(study_name=name, storage=storage))
    return total
