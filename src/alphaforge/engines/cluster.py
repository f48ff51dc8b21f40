"""The Dask cluster alphaforge works on: an existing one (a scheduler address), the client already
open in this process, or a local one started for the call and stopped after it.

alphaforge never schedules work itself: it hands Dask a graph and lets the scheduler place, retry
and spill. Workers may die (a killed process, an out-of-memory kill); Dask reruns their tasks on
the others, up to ``distributed.scheduler.allowed-failures`` times per task, and then gives up
with ``KilledWorker``, which :func:`cluster_errors` turns into a :class:`ClusterError`.

``distributed`` is imported when a cluster is used, not when alphaforge is: importing it (and
``dask.dataframe``) costs about a second that in-memory users should not pay.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alphaforge.errors import AlphaforgeError, ConfigError

if TYPE_CHECKING:
    from distributed import Client

logger = logging.getLogger(__name__)

_ARROW_POOL = "distributed.nanny.pre-spawn-environ.ARROW_DEFAULT_MEMORY_POOL"

__all__ = ["ClusterError", "ClusterSpec", "cluster_errors", "connect", "current_client"]


class ClusterError(AlphaforgeError):
    """The Dask cluster could not be reached, or gave up on a task (its workers kept dying)."""


@dataclass(frozen=True)
class ClusterSpec:
    """Which Dask cluster to use.

    Attributes:
        scheduler: Address of a running scheduler (``"tcp://10.0.0.5:8786"``); ``None``: a
            local cluster started for the call, or, when no field is set, the client already
            open in this process (``distributed.Client(...)``) if there is one.
        workers: Local cluster only: worker processes (default: one per core, at most 4).
        threads_per_worker: Local cluster only: threads per worker process.
        memory_limit: Local cluster only: memory cap per worker (``"2GB"``); Dask spills to
            disk from 60% of it, pauses the worker at 80% and restarts it at 95%. ``None``:
            the machine's memory shared equally between the workers.
        processes: Local cluster only: workers in their own processes (``False``: threads of
            this process; quicker to start, for small jobs and tests).
    """

    scheduler: str | None = None
    workers: int | None = None
    threads_per_worker: int = 1
    memory_limit: str | None = None
    processes: bool = True

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"cluster.workers must be an int >= 1, got {self.workers!r}")
        if self.threads_per_worker < 1:
            raise ConfigError(
                f"cluster.threads_per_worker must be an int >= 1, got {self.threads_per_worker!r}"
            )
        if self.scheduler is not None and self.workers is not None:
            raise ConfigError(
                "cluster: give a scheduler address (an existing cluster) or a number of local "
                f"workers, not both (got scheduler={self.scheduler!r}, workers={self.workers})"
            )


def current_client() -> Client | None:
    """The Dask client open in this process (the default client), or ``None``."""
    from distributed import default_client

    try:
        return default_client()
    except ValueError:  # "No clients found"
        return None


@contextlib.contextmanager
def connect(spec: ClusterSpec | None = None) -> Iterator[Client]:
    """A Dask client for the duration of the block.

    Args:
        spec: Which cluster; ``None``: ``ClusterSpec()``.

    Yields:
        The client (also this process's default client while the block runs): of the
        scheduler at ``spec.scheduler``; else, when ``spec`` asks for nothing, the client already
        open in this process; else of a local cluster (listening on 127.0.0.1 only) started
        here and closed when the block ends. An existing cluster is left as it was.

    Raises:
        ClusterError: the scheduler cannot be reached.
    """
    import dask
    from distributed import Client, LocalCluster

    spec = spec or ClusterSpec()
    if spec == ClusterSpec() and (open_client := current_client()) is not None:
        yield open_client  # nothing asked for: the client already open
        return
    with contextlib.ExitStack() as stack:
        if spec.scheduler is not None:
            try:
                client = stack.enter_context(Client(spec.scheduler, timeout="20s"))
            except (OSError, TimeoutError) as exc:
                raise ClusterError(
                    f"cannot reach the Dask scheduler at {spec.scheduler!r}: {exc}"
                ) from None
        else:
            # the local scheduler runs here: its P2P shuffle notices are not for users
            logging.getLogger("distributed.shuffle").setLevel(logging.ERROR)
            # Arrow's own pool keeps freed memory, which Dask counts against a worker's cap:
            # local worker processes use the system allocator (Dask has it return memory)
            stack.enter_context(dask.config.set({_ARROW_POOL: "system"}))
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=spec.workers or _default_workers(),
                    threads_per_worker=spec.threads_per_worker,
                    memory_limit=spec.memory_limit or "auto",
                    processes=spec.processes,
                    # worker processes talk over loopback TCP; threads use in-process queues
                    **({"host": "127.0.0.1"} if spec.processes else {}),
                    dashboard_address="127.0.0.1:0",  # its HTTP server: loopback only
                )
            )
            client = stack.enter_context(Client(cluster))
        logger.info("Dask cluster: %s", _describe(client))
        yield client


def _default_workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0))))


def _describe(client: Client) -> str:
    info = client.scheduler_info()
    workers = info.get("workers", {})
    threads = sum(w.get("nthreads", 0) for w in workers.values())
    return f"{info.get('address')} with {len(workers)} workers, {threads} threads"


@contextlib.contextmanager
def cluster_errors(what: str) -> Iterator[None]:
    """Turn Dask's "gave up" errors inside the block into a :class:`ClusterError`.

    Args:
        what: What was being computed, for the message (``"features of bars/"``).

    Raises:
        ClusterError: a task's workers died more often than the scheduler allows, or the
            cluster went away.
    """
    from distributed import KilledWorker

    try:
        yield
    except KilledWorker as exc:
        raise ClusterError(
            f"{what}: Dask gave up after workers died while running a task ({exc}); nothing "
            "was written. Workers die when killed or out of memory: give them more memory "
            "(memory_limit) or smaller partitions"
        ) from None
    except (OSError, TimeoutError) as exc:
        if isinstance(exc, AlphaforgeError):
            raise
        raise ClusterError(f"{what}: failed on the Dask cluster: {exc}") from None


def worker_count(client: Any) -> int:
    """Number of workers the client's scheduler knows about (at least 1)."""
    return max(1, len(client.scheduler_info().get("workers", {})))
