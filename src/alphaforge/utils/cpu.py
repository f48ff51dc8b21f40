"""How many CPU threads this process may use: counted once, here, for every tree library.

- The count is the smallest of: the CPUs the scheduler lets this process run on
  (``os.sched_getaffinity``; ``os.cpu_count`` where the platform has no affinity), the cgroup CPU
  quota rounded up (cgroup v2 ``cpu.max``, or v1 ``cpu.cfs_quota_us / cpu.cfs_period_us``: what a
  container with ``--cpus`` gets), and ``OMP_NUM_THREADS`` when it is set to a positive integer.
- ``n_jobs`` follows scikit-learn and joblib: ``-1`` all of those, ``-2`` all but one, ...,
  ``k >= 1`` exactly ``k`` threads; ``0`` is an error.
- Tree libraries are always given the resolved count: OpenMP's own default is the machine's
  logical cores, which oversubscribes a container limited by its cgroup quota.
- The count is of CPUs the process may use, not of idle ones. On a machine where other busy
  processes share those CPUs, OpenMP threads wait at every parallel region for a sibling that
  lost its core, and fewer threads can be much faster: set ``n_jobs`` or ``OMP_NUM_THREADS``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

from alphaforge.errors import ConfigError

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> int | None:
    """The cgroup CPU quota in whole CPUs (rounded up), or ``None`` when there is none.

    Args:
        root: The cgroup file system's mount point (tests pass a fake one).

    Returns:
        ``ceil(quota / period)`` from cgroup v2 ``cpu.max`` (``"<quota> <period>"``, or
        ``"max <period>"`` for no limit) or cgroup v1 ``cpu/cpu.cfs_quota_us`` and
        ``cpu/cpu.cfs_period_us`` (quota ``-1``: no limit); ``None`` when neither file is
        readable or no quota is set.
    """
    v2 = root / "cpu.max"
    try:
        quota, period = v2.read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    if q <= 0 or p <= 0:
        return None
    return max(1, math.ceil(q / p))


def available_cpus(
    *, environ: Mapping[str, str] | None = None, cgroup_root: Path = CGROUP_ROOT
) -> int:
    """CPUs this process may use: affinity, cgroup quota and ``OMP_NUM_THREADS``, the smallest.

    Args:
        environ: Environment to read ``OMP_NUM_THREADS`` from; ``None``: ``os.environ``.
        cgroup_root: The cgroup mount point (see :func:`cgroup_cpu_limit`).

    Returns:
        An int >= 1. A malformed or non-positive ``OMP_NUM_THREADS`` is ignored, as OpenMP
        ignores it.
    """
    environ = os.environ if environ is None else environ
    if hasattr(os, "sched_getaffinity"):
        counts = [len(os.sched_getaffinity(0))]
    else:  # macOS, Windows: no affinity mask
        counts = [os.cpu_count() or 1]
    quota = cgroup_cpu_limit(cgroup_root)
    if quota is not None:
        counts.append(quota)
    omp = environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()  # "4,2": nested levels
    if omp.isdigit() and int(omp) > 0:
        counts.append(int(omp))
    return max(1, min(counts))


def resolve_n_jobs(n_jobs: int, *, available: int | None = None) -> int:
    """The number of threads ``n_jobs`` asks for.

    Args:
        n_jobs: ``k >= 1``: exactly ``k``; ``-1``: every available CPU; ``-k``: all but
            ``k - 1`` of them (at least one).
        available: The CPU count to resolve against; ``None``: :func:`available_cpus`.

    Returns:
        An int >= 1.

    Raises:
        ConfigError: ``n_jobs`` is 0 or not an int.
    """
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ConfigError(
            f"n_jobs must be an int >= 1 (threads) or < 0 (-1: all available CPUs, -2: all but "
            f"one, ...), got {n_jobs!r}"
        )
    if n_jobs > 0:
        return n_jobs
    cpus = available_cpus() if available is None else available
    return max(1, cpus + 1 + n_jobs)
