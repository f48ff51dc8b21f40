"""Atomic writes (temp file + ``os.replace``), paths users give, symbol -> file-name mapping.

Nothing alphaforge writes is ever left half-written: a crash leaves either the old file or the new
one. Temporary files and folders are named ``.<name>.<host>-<pid>.<random>.tmp`` (host: a digest
of the host name) so :func:`remove_stale_temp` can tell a killed writer's leftovers from a live
writer's work. They are created with mode ``0o666`` (files) and ``0o777`` (folders) and the
kernel applies the umask, as for any ``open``: under umask 022 what alphaforge writes is 0644 and
0755, never the private 0600/0700 of :mod:`tempfile`. Symbols become file names only through
:func:`safe_filename`, which rejects path tricks and maps legal-but-awkward tickers (``CON``,
``BRK.B``) to collision-free names. :func:`check_source_file` turns a config's missing data file
into an error that says how relative paths are read and how to give another panel.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import logging
import os
import re
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TypeVar

from alphaforge.errors import DataError, OutputError

# Device names Windows reserves regardless of extension (CON.txt is still CON).
_WINDOWS_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}
_PLAIN = re.compile(r"^[A-Za-z0-9_\-]+$")
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_TEMP_NAME = re.compile(r"^\..+\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)\.[^.]+\.tmp$")
# O_EXCL: never open someone else's file; O_NOFOLLOW: never write through a planted link
_NEW_FILE = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_T = TypeVar("_T")
#: errors that mean "the disk (or the user's quota / file-size limit) is full"
FULL_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_FULL_BYTES = 1 << 20  # a write that failed with less free than this: the disk was full

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", **kwargs: object) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success rename it over ``path``.

    Args:
        path: Final destination. Its parent directory is created if missing.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        **kwargs: Passed to ``open`` (e.g. ``encoding``).

    Yields:
        The open temporary file. If the block raises, the temp file is removed and ``path`` is
        untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # 0o666 & ~umask, as open() gives (mkstemp would give 0o600)
    made, fd = _new_temp(path, lambda p: os.open(p, _NEW_FILE, 0o666))
    tmp = os.fspath(made)  # a str, as tempfile.mkstemp gave (tests stub os.replace(str, str))
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:  # type: ignore[call-overload]
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        full = is_new_full_disk(exc, path)  # before the temp file frees its space
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if full:
            raise full_disk_error(exc, path) from exc
        raise


def make_temp_dir(path: str | os.PathLike[str]) -> Path:
    """Create an empty hidden folder beside ``path`` in which to build it before renaming it.

    The folder is ``.<name>.<host>-<pid>.<random>.tmp`` in ``path``'s parent (created if
    missing), with mode ``0o777 & ~umask`` like any ``mkdir``, so once renamed into place it is
    as readable as every other folder the user creates. First, the temporary files and folders
    that killed processes of this host left in that parent are removed (see
    :func:`remove_stale_temp`): a killed run, bundle or model save is cleaned up by the next one
    in the same folder. Everything else there (``<run>.ckpt`` of an interrupted run, live
    writers' folders) is left alone.

    Args:
        path: The final destination (not created).

    Returns:
        The new, empty temporary folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for left in remove_stale_temp(path.parent, recursive=False):
        logger.info("removed %s, left by a killed process", left)
    tmp, _ = _new_temp(path, lambda p: os.mkdir(p, 0o777))
    return tmp


def new_temp_path(path: str | os.PathLike[str]) -> Path:
    """A free temporary name beside ``path`` (nothing is created), in the form
    :func:`remove_stale_temp` removes once this process is gone."""
    path = Path(path)
    return path.parent / f".{path.name}.{_HOST}-{os.getpid()}.{secrets.token_hex(4)}.tmp"


def _new_temp(path: Path, create: Callable[[Path], _T]) -> tuple[Path, _T]:
    """Call ``create`` on a free temporary name beside ``path``; retry on a name clash."""
    for _ in range(100):
        # host and pid in the name: remove_stale_temp can tell a dead writer's leftovers
        tmp = new_temp_path(path)
        try:
            return tmp, create(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name}")


def remove_stale_temp(directory: str | os.PathLike[str], *, recursive: bool = True) -> list[Path]:
    """Delete temp files and folders that killed writers left under ``directory``.

    Only those named by :func:`atomic_write` or :func:`make_temp_dir` whose writer ran on this
    host and is no longer alive are removed, so a concurrent writer's work (or another machine's,
    on a shared file system) is left alone.

    Args:
        directory: Folder to clean; a missing folder has nothing to clean.
        recursive: Look in every sub-folder too (tuning results), or only at ``directory``'s own
            entries (the parent folder of run directories and bundles).

    Returns:
        The removed paths.
    """
    removed = []
    found = Path(directory).rglob(".*.tmp") if recursive else Path(directory).glob(".*.tmp")
    for tmp in sorted(found):  # parents before what they hold
        m = _TEMP_NAME.match(tmp.name)
        if m is None or m["host"] != _HOST or _pid_alive(int(m["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):  # gone with its parent, or by another sweeper
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
            removed.append(tmp)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def check_source_file(source: str) -> None:
    """Refuse a config's ``data.source`` file that does not exist, saying how to fix it.

    Args:
        source: ``data.source`` as the config gives it; ``builtin:`` and ``synthetic:`` sources
            are not files and pass.

    Raises:
        DataError: the file does not exist. A relative path is resolved against the working
            directory, not the config's folder, so the message names that directory and
            suggests ``--data``.
    """
    if source.startswith(("builtin:", "synthetic:")) or Path(source).exists():
        return
    if glob.has_magic(source) and glob.glob(source, recursive=True):  # shards of a dataset
        return
    where = (
        ""
        if Path(source).is_absolute()
        else f", resolved against the working directory {Path.cwd()}, not the config's folder"
    )
    raise DataError(
        f"file not found (the config's data.source{where}); run from the folder it is relative "
        "to, or pass your own panel with --data my_panel.parquet (CSV/Parquet: symbol, "
        "timestamp, open, high, low, close, volume) or a built-in one (alphaforge data list)",
        path=source,
    )


def check_symbol(symbol: object) -> str:
    """Reject symbol names that could escape a directory or corrupt a terminal or file system.

    Args:
        symbol: Candidate symbol.

    Returns:
        The symbol, unchanged.

    Raises:
        DataError: empty, path separators, ``..``, NUL or other control characters.
    """
    if not isinstance(symbol, str) or not symbol.strip():
        raise DataError(f"symbol must be a non-empty string, got {symbol!r}")
    if "/" in symbol or "\\" in symbol:
        raise DataError(f"unsafe symbol name {symbol!r}: contains a path separator")
    if ".." in symbol:
        raise DataError(f"unsafe symbol name {symbol!r}: contains '..'")
    bad = [c for c in symbol if ord(c) < 32 or ord(c) == 127]
    if bad:
        raise DataError(f"unsafe symbol name {symbol!r}: contains control character {bad[0]!r}")
    if symbol != symbol.strip():
        raise DataError(f"unsafe symbol name {symbol!r}: leading or trailing whitespace")
    return symbol


def safe_filename(symbol: str) -> str:
    """Map a (checked) symbol to a file-name stem that is safe on every common file system.

    Plain upper-case tickers (letters, digits, ``_``, ``-``) that are not Windows device names map
    to themselves. Anything else (``BRK.B``, ``CON``, ``^GSPC``, non-ASCII) keeps a readable,
    sanitised prefix plus an 8-hex digest of the exact symbol, so ``BRK.B`` and ``BRK-B`` never
    collide and the mapping is stable across runs and machines.

    Args:
        symbol: Symbol name; validated with :func:`check_symbol` first.

    Returns:
        File-name stem without extension.

    Raises:
        DataError: if the symbol is unsafe (see :func:`check_symbol`).
    """
    check_symbol(symbol)
    reserved = symbol.split(".")[0].upper() in _WINDOWS_RESERVED
    # lower case gets a digest too: "aapl" and "AAPL" collide on case-insensitive file systems
    if _PLAIN.match(symbol) and not reserved and symbol == symbol.upper():
        return symbol
    readable = re.sub(r"[^A-Za-z0-9_\-]", "_", symbol)[:40] or "sym"
    digest = hashlib.sha256(symbol.encode("utf-8")).hexdigest()[:8]
    return f"{readable}~{digest}"


def is_full_disk(exc: BaseException, where: Path | None = None) -> bool:
    """Whether ``exc`` comes from a full disk, quota or file-size limit.

    Args:
        exc: The error a write raised.
        where: The folder written to. Libraries that write files themselves (LightGBM, XGBoost)
            raise their own errors without an errno; when ``where``'s file system has less than
            1 MiB free, such a failure is counted as a full disk too.
    """
    seen: set[int] = set()
    chain: BaseException | None = exc
    while chain is not None and id(chain) not in seen:
        seen.add(id(chain))
        if isinstance(chain, OSError) and (
            chain.errno in FULL_DISK_ERRNOS
            or any(s in str(chain) for s in ("No space left", "File too large", "Disk quota"))
        ):
            return True
        chain = chain.__cause__ or chain.__context__
    if where is None or isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return False
    try:
        st = os.statvfs(where)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _FULL_BYTES


def full_disk_error(exc: BaseException, path: str | os.PathLike[str]) -> OutputError:
    """The :class:`OutputError` that reports a full disk while writing ``path``."""
    return OutputError(
        f"{path}: no space left on the device (or the quota / file-size limit is reached): "
        f"{exc}; nothing was written and the temporary files were removed"
    )


def is_new_full_disk(exc: BaseException, path: str | os.PathLike[str]) -> bool:
    """:func:`is_full_disk` for a write to ``path``, unless ``exc`` already reports it."""
    return not isinstance(exc, OutputError) and is_full_disk(exc, Path(path).parent)
