"""Token documents and token files: one document per symbol, concatenated, with time stamps.

- :class:`TokenStreams`: the tokens of every symbol in time order, as one array plus offsets;
  time splits keep earlier tokens of a document as context of its validation targets.
- Token files: Parquet ``timestamp, symbol, token`` with a JSON ``meta`` (tokenizer, split) in
  the file's key-value metadata, written atomically.

Shapes: n tokens, D documents.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from alphaforge.errors import DataError
from alphaforge.utils.io import atomic_write

__all__ = ["TOKENS_META_KEY", "TokenStreams", "read_tokens", "write_tokens"]

TOKENS_META_KEY = b"alphaforge.tokens"
TOKENS_SHA256_KEY = b"alphaforge.tokens.sha256"  # of the rows, checked on reading


@dataclass(frozen=True, eq=False)
class TokenStreams:
    """Token documents (one per symbol) concatenated into one array.

    Attributes:
        tokens: ``(n,)`` int64 tokens, document after document, each in time order.
        offsets: ``(D + 1,)`` int64: document ``d`` is ``tokens[offsets[d]:offsets[d + 1]]``.
        symbols: ``(D,)`` symbol of each document.
        timestamps: ``(n,)`` time of each token (its patch's last bar), or ``None``.
        target_from: ``(D,)`` first position in each document that counts as a prediction
            target (evaluation windows), or ``None``: every position.
    """

    tokens: npt.NDArray[np.int64]
    offsets: npt.NDArray[np.int64]
    symbols: tuple[str, ...]
    timestamps: pd.Index | None = None
    target_from: npt.NDArray[np.int64] | None = None

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> TokenStreams:
        """From a long frame with ``symbol``, ``timestamp`` and ``token`` columns (any order).

        Raises:
            DataError: missing columns or negative tokens.
        """
        missing = {"symbol", "timestamp", "token"} - set(frame.columns)
        if missing:
            raise DataError(
                f"token frame lacks columns {sorted(missing)}; has {list(frame.columns)}"
            )
        f = frame.sort_values(["symbol", "timestamp"], kind="stable")
        tokens = f["token"].to_numpy(np.int64)
        if len(tokens) and tokens.min() < 0:
            raise DataError(f"tokens must be >= 0, got min {tokens.min()}")
        sym = f["symbol"].astype(str).to_numpy()
        starts = np.flatnonzero(np.r_[True, sym[1:] != sym[:-1]]) if len(sym) else np.zeros(0)
        offsets = np.r_[starts, len(sym)].astype(np.int64)
        return cls(tokens, offsets, tuple(sym[starts]), pd.Index(f["timestamp"]))

    @property
    def lengths(self) -> npt.NDArray[np.int64]:
        """``(D,)`` tokens per document."""
        return np.diff(self.offsets)

    def doc_ids(self) -> npt.NDArray[np.int64]:
        """``(n,)`` document index of every token."""
        return np.repeat(np.arange(len(self.symbols)), self.lengths)

    def positions(self) -> npt.NDArray[np.int64]:
        """``(n,)`` position of every token inside its document."""
        return np.arange(len(self.tokens)) - np.repeat(self.offsets[:-1], self.lengths)

    def target_mask(self) -> npt.NDArray[np.bool_]:
        """``(n,)`` True where a token counts as a target (position >= ``target_from``)."""
        if self.target_from is None:
            return np.ones(len(self.tokens), dtype=bool)
        return self.positions() >= np.repeat(self.target_from, self.lengths)

    def previous(self) -> npt.NDArray[np.int64]:
        """``(n,)`` the token before each one in its document, -1 at a document's start."""
        prev = np.r_[-1, self.tokens[:-1]]
        prev[self.offsets[:-1][self.lengths > 0]] = -1
        return prev

    def to_frame(self) -> pd.DataFrame:
        """Long frame ``timestamp, symbol, token`` (timestamp NaT when unknown)."""
        ts = (
            self.timestamps
            if self.timestamps is not None
            else pd.DatetimeIndex([pd.NaT] * len(self.tokens))
        )
        return pd.DataFrame(
            {
                "timestamp": ts,
                "symbol": np.repeat(np.asarray(self.symbols, dtype=object), self.lengths),
                "token": self.tokens,
            }
        )

    def split(self, train_end: Any) -> tuple[TokenStreams, TokenStreams]:
        """Split by time: training tokens at or before ``train_end``; validation targets after.

        Returns:
            ``(train, valid)``: ``train`` keeps each document's tokens up to ``train_end``;
            ``valid`` keeps whole documents (earlier tokens are context) with ``target_from`` at
            the first token after ``train_end``; documents without such a token are dropped.

        Raises:
            DataError: no timestamps, or an empty side.
        """
        if self.timestamps is None:
            raise DataError("cannot split tokens by time: they carry no timestamps")
        keep_train = np.asarray(self.timestamps <= train_end)
        n_before = (
            np.add.reduceat(keep_train.astype(np.int64), self.offsets[:-1])
            if len(self.tokens)
            else np.zeros(0, dtype=np.int64)
        )
        n_before = np.where(self.lengths > 0, n_before, 0)
        train = _subset(self, keep_train, np.arange(len(self.symbols)))
        has_valid = n_before < self.lengths
        valid_docs = np.flatnonzero(has_valid)
        keep_valid = np.repeat(has_valid, self.lengths)
        valid = _subset(self, keep_valid, valid_docs)
        valid = dataclasses.replace(valid, target_from=n_before[valid_docs])
        if len(train.tokens) == 0 or len(valid.tokens) == 0:
            raise DataError(
                f"time split at {train_end}: {len(train.tokens)} training and "
                f"{int((~keep_train).sum())} validation tokens; need both > 0"
            )
        return train, valid


def _subset(s: TokenStreams, keep: np.ndarray, docs: np.ndarray) -> TokenStreams:
    """Tokens where ``keep``; documents ``docs`` (those left empty are dropped)."""
    lengths = (
        np.add.reduceat(keep.astype(np.int64), s.offsets[:-1])[docs]
        if len(keep)
        else np.zeros(len(docs), dtype=np.int64)
    )
    lengths = np.where(s.lengths[docs] > 0, lengths, 0)
    nonempty = lengths > 0
    return TokenStreams(
        s.tokens[keep],
        np.r_[0, np.cumsum(lengths[nonempty])].astype(np.int64),
        tuple(np.asarray(s.symbols, dtype=object)[docs][nonempty]),
        None if s.timestamps is None else s.timestamps[keep],
    )


def write_tokens(
    path: str | os.PathLike[str], frame: pd.DataFrame, meta: dict[str, Any] | None = None
) -> Path:
    """Write a token frame (``timestamp, symbol, token``) to Parquet atomically, with ``meta``
    (JSON) in the file's key-value metadata."""
    frame = frame.reset_index(drop=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    merged = {
        **(table.schema.metadata or {}),
        TOKENS_META_KEY: json.dumps(meta or {}).encode(),
        TOKENS_SHA256_KEY: _content_digest(frame).encode(),
    }
    with atomic_write(path, "wb") as fh:
        pq.write_table(table.replace_schema_metadata(merged), fh)
    return Path(path)


def read_tokens(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a file written by :func:`write_tokens`: ``(frame, meta)``.

    Raises:
        DataError: missing or unreadable file, or missing columns.
    """
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read tokens: {exc}", path=str(path)) from None
    kv = table.schema.metadata or {}
    try:
        meta = json.loads(kv.get(TOKENS_META_KEY, b"{}"))
    except ValueError as exc:
        msg = f"token file is damaged: its metadata is not JSON ({exc})"
        raise DataError(msg, path=str(path)) from None
    frame = table.to_pandas()
    missing = {"symbol", "timestamp", "token"} - set(frame.columns)
    if missing:
        raise DataError(f"token file lacks columns {sorted(missing)}", path=str(path))
    digest = kv.get(TOKENS_SHA256_KEY)  # absent in files written before digests
    if digest is not None and digest.decode() != _content_digest(frame):
        raise DataError(
            "token file is damaged: its tokens' SHA-256 differs from the one recorded when it "
            "was written (altered)",
            path=str(path),
        )
    return frame, meta


def _content_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of a token frame's timestamps, symbols and tokens, in row order."""
    h = hashlib.sha256()
    h.update(pd.to_datetime(frame["timestamp"]).to_numpy("datetime64[ns]").tobytes())
    h.update("\0".join(map(str, frame["symbol"])).encode("utf-8"))
    h.update(np.ascontiguousarray(frame["token"].to_numpy(np.int64)).tobytes())
    return h.hexdigest()
