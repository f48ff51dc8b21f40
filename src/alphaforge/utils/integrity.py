"""Checksums for what alphaforge reads back: file manifests, sealed JSON records, sealed blobs.

Nothing read back is trusted on its word. A folder (run directory, bundle, saved model) lists each
file's size and SHA-256 in a manifest; a JSON record carries a ``seal``, the SHA-256 of its own
canonical content; a binary checkpoint ends with a trailer holding the SHA-256 of its payload.
A truncated or altered file fails its check with one :class:`~alphaforge.errors.DataError` that
names it, before any of its content is used.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Container, Iterable
from pathlib import Path
from typing import Any

from alphaforge.errors import DataError

SEAL = "seal"
_MAGIC = b"AFSHA256"  # blob trailer: _MAGIC + 32-byte SHA-256 of everything before it
_TRAILER = len(_MAGIC) + 32
_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def digest_tree(root: Path, *, skip: Container[str] = ()) -> dict[str, dict[str, Any]]:
    """``{relative POSIX path: {"size", "sha256"}}`` of every file below ``root``.

    Args:
        root: Folder to describe.
        skip: Relative paths to leave out (the manifest itself, files rewritten later).
    """
    out = {}
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root).as_posix()
        if rel not in skip:
            out[rel] = {"size": file.stat().st_size, "sha256": file_digest(file)}
    return out


def verify_tree(
    root: Path, files: dict[str, Any], *, what: str, only: Iterable[str] | None = None
) -> None:
    """Check files below ``root`` against a manifest's ``files`` table.

    Args:
        root: The folder.
        files: ``{relative path: {"size", "sha256"}}`` (or a bare SHA-256 string, as older
            bundles stored).
        what: How to name the folder in errors (``"run"``, ``"bundle"``, ``"saved model"``).
        only: Check just these relative paths (those the caller is about to read); default all.

    Raises:
        DataError: a listed file is missing, has another size (truncated or grown) or another
            SHA-256 (altered); the message names the file.
    """
    for rel in files if only is None else [r for r in only if r in files]:
        entry = files[rel]
        size, digest = (None, entry) if isinstance(entry, str) else (entry["size"], entry["sha256"])
        file = root / rel
        if not file.is_file():
            raise DataError(f"{what} file {rel} is missing", path=str(root))
        got = file.stat().st_size
        if size is not None and got != size:
            raise DataError(
                f"{what} file {rel} is damaged: {got} bytes, the manifest recorded {size} "
                "(truncated or overwritten)",
                path=str(root),
            )
        if file_digest(file) != digest:
            raise DataError(
                f"{what} file {rel} is damaged: its SHA-256 differs from the manifest's "
                "(altered after it was written)",
                path=str(root),
            )


def seal(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` (as JSON would return it) with a ``seal`` key: the SHA-256 of the rest."""
    plain = json.loads(json.dumps(record, allow_nan=True))
    plain.pop(SEAL, None)
    plain[SEAL] = _seal_of(plain)
    return plain


def _seal_of(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != SEAL}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_json(path: Path, *, what: str, sealed: bool | None = False) -> Any:
    """Read a JSON file written by alphaforge, refusing a damaged one.

    Args:
        path: The file.
        what: How to name it in errors (``"metrics"``, ``"manifest"``, ``"model metadata"``).
        sealed: ``True``: require a ``seal``; ``False``: check it if there is one (a record from
            an older version has none); ``None``: leave it to the caller (:func:`check_seal`).

    Raises:
        DataError: missing, not UTF-8 or not JSON (truncated), or its seal does not match its
            content (altered); the message names the file.
    """
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{what} file is missing", path=str(path)) from None
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise DataError(
            f"{what} file is damaged: not valid JSON ({exc}); truncated or altered",
            path=str(path),
        ) from None
    if sealed is not None:
        check_seal(record, path, what=what, required=sealed)
    return record


def check_seal(record: Any, path: Path, *, what: str, required: bool = False) -> None:
    """Refuse a JSON record whose ``seal`` does not match its content.

    Args:
        record: The parsed record.
        path: Its file, for the message.
        what: How to name it.
        required: A record without a seal fails too (else it passes: written before seals).

    Raises:
        DataError: the seal differs (altered), or is missing when ``required``.
    """
    if not isinstance(record, dict) or (SEAL not in record and not required):
        return
    if record.get(SEAL) != _seal_of(record):
        raise DataError(
            f"{what} file is damaged: its content does not match its seal (altered after it "
            "was written)",
            path=str(path),
        )


def seal_blob(payload: bytes) -> bytes:
    """``payload`` followed by a trailer with its SHA-256 (see :func:`open_blob`)."""
    return payload + _MAGIC + hashlib.sha256(payload).digest()


def open_blob(raw: bytes, path: Path, *, what: str) -> bytes:
    """The payload of a :func:`seal_blob` file, after checking it.

    Raises:
        DataError: no trailer (truncated) or the payload's SHA-256 differs (altered).
    """
    if len(raw) < _TRAILER or raw[-_TRAILER : -_TRAILER + len(_MAGIC)] != _MAGIC:
        raise DataError(f"{what} file is damaged: truncated (no checksum trailer)", path=str(path))
    payload = raw[:-_TRAILER]
    if hashlib.sha256(payload).digest() != raw[-32:]:
        raise DataError(
            f"{what} file is damaged: its SHA-256 differs from its trailer (altered)",
            path=str(path),
        )
    return payload
