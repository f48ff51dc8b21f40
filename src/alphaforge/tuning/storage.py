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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock, JournalStorage
from optuna.trial import TrialState

from alphaforge.errors import ConfigError

logger = logging.getLogger(__name__)

OWNER_ATTR = "alphaforge_worker"  # "host:pid" of the process running a trial
STALE_UNOWNED_S = 60.0  # a RUNNING trial with no owner this old is from a dead worker
JOURNAL_LOCK_GRACE_S = 5  # seconds before a journal lock left by a dead writer is broken

StorageKind = Literal["sqlite", "journal", "postgresql", "rdb"]


@dataclass(frozen=True)
class StorageSpec:
    """Which Optuna storage the workers open, parsed once (picklable for ``spawn`` workers).

    Attributes:
        kind: ``"sqlite"``, ``"journal"`` (Optuna's journal file), ``"postgresql"`` (with
            heartbeats) or ``"rdb"`` (any other SQLAlchemy URL, e.g. MySQL).
        location: The journal file's path, or the database URL.
    """

    kind: StorageKind
    location: str

    @classmethod
    def parse(cls, storage: str | os.PathLike[str]) -> StorageSpec:
        """Parse a storage URL, a ``journal:PATH`` or a ``PATH.journal`` file name."""
        text = os.fspath(storage)
        if text.startswith("journal:"):
            return cls("journal", text.removeprefix("journal:"))
        if text.endswith(".journal"):
            return cls("journal", text)
        if text.startswith("sqlite"):
            return cls("sqlite", text)
        if text.startswith("postgresql"):
            return cls("postgresql", text)
        if "://" not in text:
            raise ConfigError(
                f"storage {text!r}: expected sqlite:///FILE.db, FILE.journal or a "
                "database URL such as postgresql://..."
            )
        return cls("rdb", text)

    @property
    def url(self) -> str:
        """The storage as one readable string: the URL, or ``journal:PATH``."""
        return f"journal:{self.location}" if self.kind == "journal" else self.location

    def __str__(self) -> str:
        return self.url


def resolve_storage(
    storage: str | os.PathLike[str] | StorageSpec | None, root: Path, workers: int
) -> StorageSpec:
    """The storage every worker opens.

    Args:
        storage: A database URL (``sqlite:///F.db``, ``postgresql://...``), a journal file
            (``F.journal`` or ``journal:F``), a parsed spec, or None for ``root/optuna.db``
            with one worker and ``root/optuna.journal`` with several.
        root: Directory of the default storage.
        workers: Worker processes that will write to it.

    Returns:
        The parsed :class:`StorageSpec`.

    Raises:
        ConfigError: SQLite with several workers (not safe under parallel writers), or a
            string that is neither a URL nor a journal file.
    """
    if storage is None:
        return (
            StorageSpec("sqlite", f"sqlite:///{root / 'optuna.db'}")
            if workers == 1
            else StorageSpec("journal", str(root / "optuna.journal"))
        )
    spec = storage if isinstance(storage, StorageSpec) else StorageSpec.parse(storage)
    if spec.kind == "sqlite" and workers > 1:
        raise ConfigError(
            f"storage {spec.url!r}: SQLite is not safe with {workers} workers; use "
            "a journal file (PATH.journal) or postgresql://..."
        )
    return spec


def open_storage(spec: StorageSpec | str) -> optuna.storages.BaseStorage:
    """Open a storage named by :func:`resolve_storage` (PostgreSQL: heartbeat + retry).

    Args:
        spec: A :class:`StorageSpec`, or a string :meth:`StorageSpec.parse` accepts (such as
            :attr:`TuneSummary.storage <alphaforge.tuning.TuneSummary>`).
    """
    spec = spec if isinstance(spec, StorageSpec) else StorageSpec.parse(spec)
    if spec.kind == "journal":
        # appends take milliseconds: a lock older than a few seconds belongs to a killed worker
        lock = JournalFileSymlinkLock(spec.location, grace_period=JOURNAL_LOCK_GRACE_S)
        return JournalStorage(JournalFileBackend(spec.location, lock_obj=lock))
    if spec.kind == "postgresql":
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # a trial whose worker stops beating for grace_period is failed and re-queued once
            if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):  # Optuna >= 4.9
                stale = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
                retry = {"heartbeat_stale_trial_callback": stale}
            else:
                retry = {
                    "failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=1)
                }
            return optuna.storages.RDBStorage(
                spec.location,
                heartbeat_interval=10,
                grace_period=60,
                engine_kwargs={"pool_pre_ping": True},
                **retry,
            )
    return optuna.storages.RDBStorage(spec.location)


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

    Uses ``study.tell(..., state=FAIL, skip_if_finished=True)``: a trial that finished while
    the sweep ran keeps its result.

    Returns:
        Number of trials failed.
    """
    n = 0
    now = datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get(OWNER_ATTR)
        age = (now - t.datetime_start).total_seconds() if t.datetime_start else math.inf
        if (owner is None and age < STALE_UNOWNED_S) or _owner_alive(owner):
            continue
        try:
            told = study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:  # finished between read and write
            continue
        n += told.state == TrialState.FAIL
    if n:
        logger.warning("study %s: marked %d trials of dead workers FAIL", study.study_name, n)
    return n


def sweep(spec: StorageSpec | str, study_names: Sequence[str]) -> int:
    """Repair the journal tail and fail stale trials in every existing study of ``study_names``.

    Args:
        spec: The storage (a :class:`StorageSpec` or a string :meth:`StorageSpec.parse` accepts).
        study_names: Studies to sweep; names without a study are skipped.

    Returns:
        Number of trials failed.
    """
    spec = spec if isinstance(spec, StorageSpec) else StorageSpec.parse(spec)
    if spec.kind == "journal":
        repair_journal(Path(spec.location))
    if spec.kind == "postgresql":
        return 0  # heartbeats fail stale trials there; pids of other machines mean nothing
    storage = open_storage(spec)
    existing = {s.study_name for s in storage.get_all_studies()}
    total = 0
    for name in study_names:
        if name in existing:
            total += sweep_stale(optuna.load_study(study_name=name, storage=storage))
    return total
