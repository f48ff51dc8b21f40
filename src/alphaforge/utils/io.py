"""Atomic writes (temp file + ``os.replace``) and symbol -> file-name mapping.

Nothing alphaforge writes is ever left half-written: a crash leaves either the old file or the new
one. Symbols become file names only through :func:`safe_filename`, which rejects path tricks and
maps legal-but-awkward tickers (``CON``, ``BRK.B``) to collision-free names.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from alphaforge.errors import DataError

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
    # the writer's host and pid in the name let remove_stale_temp tell a dead writer's leftovers
    prefix = f".{path.name}.{_HOST}-{os.getpid()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:  # type: ignore[call-overload]
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_stale_temp(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete temp files that :func:`atomic_write` left under ``directory`` when killed.

    Only files whose writer ran on this host and is no longer alive are removed, so a
    concurrent writer's temp file is left alone.

    Returns:
        The removed paths.
    """
    removed = []
    for tmp in Path(directory).rglob(".*.tmp"):
        m = _TEMP_NAME.match(tmp.name)
        if m is None or m["host"] != _HOST or _pid_alive(int(m["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
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
