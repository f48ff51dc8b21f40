"""Inter-process locks: one writer per output, compare-and-swap updates of shared records.

A lock is a small file beside what it guards (``.<name>.lock``), held with ``flock`` for as long as
the writer runs. The kernel releases it when the holder exits for any reason (SIGKILL included),
so a killed writer never leaves a lock that blocks the next one; the file itself is removed by its
holder, or by the next writer or sweep (:func:`remove_free_locks`). After taking the lock the
holder checks that the path still names the file it locked: a lock file removed and recreated by
someone else between ``open`` and ``flock`` is retried, never shared.

On a shared file system (NFS v4, or v3 with ``lockd``) Linux maps ``flock`` onto the server's byte
range locks, so the same code serialises writers on different machines. The file records who holds
it (host, pid, start time) for the error message a blocked writer prints.

:func:`exclusive_output` is the one way a run directory or a bundle comes into being: of concurrent
writers to one path exactly one proceeds, the others fail before doing any work, and
``overwrite=True`` never deletes what a live writer is building.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from alphaforge.errors import OutputError
from alphaforge.utils.io import full_disk_error, is_new_full_disk, make_temp_dir, new_temp_path

_OPEN = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
# flock on NFS is a per-process POSIX lock: threads of one process also queue on this
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file that guards ``path``: ``.<name>.lock`` in the same folder."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str], *, wait: float = 0.0, what: str = "") -> Iterator[None]:
    """Hold the inter-process lock of ``path`` (see :func:`lock_path`) for the ``with`` block.

    Args:
        path: What the lock guards (the lock file is beside it; its folder is created).
        wait: Seconds to wait for a busy lock; ``0`` fails at once.
        what: How to name ``path`` in the error (default: the path).

    Raises:
        OutputError: the lock is still held by another writer after ``wait`` seconds; the message
            names the holder (host, pid, since when).
    """
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with _THREAD_LOCKS_GUARD:
        local = _THREAD_LOCKS.setdefault(os.path.abspath(lock), threading.Lock())
    deadline = time.monotonic() + wait
    if not (local.acquire(timeout=wait) if wait > 0 else local.acquire(blocking=False)):
        raise OutputError(f"{what or path} is being written by another thread of this process")
    try:
        fd = _acquire(lock, deadline, what or str(path))
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # while still held: a waiter that opened it re-checks and retries
            os.close(fd)
    finally:
        local.release()


def _acquire(lock: Path, deadline: float, what: str) -> int:
    """Open and ``flock`` ``lock`` until ``deadline``; the held descriptor."""
    while True:
        fd = os.open(lock, _OPEN, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            if time.monotonic() >= deadline:
                raise OutputError(
                    f"{what} is being written by another process ({holder}); wait for it to "
                    "finish or choose another path"
                ) from None
            time.sleep(0.02)
            continue
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, lock):
            os.ftruncate(fd, 0)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            os.write(fd, f"host {socket.gethostname()} pid {os.getpid()} since {stamp}\n".encode())
            return fd
        os.close(fd)  # removed (and maybe recreated) by its last holder: lock the current one


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError):
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        if text:
            return text
    return "holder unknown"


def remove_free_locks(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove the lock files in ``directory`` that nobody holds (left by killed writers).

    Returns:
        The removed lock files.
    """
    removed = []
    for lock in sorted(Path(directory).glob(".*.lock")):
        try:
            fd = os.open(lock, _OPEN & ~os.O_CREAT, 0o666)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(fd, lock):
                lock.unlink()
                removed.append(lock)
        except BlockingIOError:
            pass  # held: a live writer
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def exclusive_output(
    path: str | os.PathLike[str], *, overwrite: bool = False, what: str = "--out"
) -> Iterator[Path]:
    """Claim ``path`` for one writer, build it in a temporary folder, publish it on success.

    The lock is taken before anything else, so a second writer to the same path fails at once,
    before any work; an existing non-empty ``path`` is refused unless ``overwrite``. On success
    the temporary folder replaces ``path`` (the old one, if any, is first renamed aside under a
    temporary name, so a crash at any point leaves the old folder, the new one, or a leftover the
    next writer removes). On failure the temporary folder is removed; a full disk becomes an
    :class:`~alphaforge.errors.OutputError` that says so.

    Args:
        path: The folder to create.
        overwrite: Replace an existing ``path`` (never one another live writer holds).
        what: How errors name the option that chose ``path``.

    Yields:
        The empty temporary folder to write into.

    Raises:
        OutputError: another writer holds ``path``; ``path`` exists and is not empty without
            ``overwrite``; the disk filled up.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path, what=f"{what} {path}"):
        check_free(path, overwrite, what)
        tmp = make_temp_dir(path)  # also removes what killed writers left beside it
        remove_free_locks(path.parent)
        try:
            yield tmp
            publish_dir(tmp, path)
        except BaseException as exc:
            full = is_new_full_disk(exc, path)  # before the temporary folder frees its space
            shutil.rmtree(tmp, ignore_errors=True)
            if full:
                raise full_disk_error(exc, path) from exc
            raise


def check_free(path: Path, overwrite: bool, what: str = "--out") -> None:
    """Refuse an existing non-empty ``path`` unless ``overwrite``."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise OutputError(f"{what}: {path} exists and is not a folder")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise OutputError(f"{what}: {path} exists and is not empty; pass --overwrite to replace it")


def publish_dir(tmp: Path, path: Path) -> None:
    """Move the finished folder ``tmp`` to ``path``, replacing an old ``path`` if there is one."""
    old = None
    if path.exists():
        old = new_temp_path(path)  # a dead writer's name: removed by the next sweep if we die
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
