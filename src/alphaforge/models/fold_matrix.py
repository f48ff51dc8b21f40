"""The hand-off from feature frames to tree libraries: one float32 matrix per fold, built once.

- Tree libraries work on float32 features (scikit-learn and XGBoost store float32; LightGBM bins
  a float32 array without copying it), so a frame becomes one C-contiguous ``(n_rows, F)``
  float32 array, NaN kept: :func:`float32_features`.
- A walk-forward run fits many models on the same rows. Inside ``with shared_fold(X):``
  :func:`take_rows` gives every model the same frame object for the same rows of ``X``, that
  frame's float32 array is built the first time a model asks for it, and :func:`shared` keeps
  library objects built from it (a constructed LightGBM ``Dataset``, an XGBoost
  ``QuantileDMatrix``) for the next model asking with the same key (parameters and label).
- Outside a ``shared_fold`` block nothing is kept: a caller's frame may change in place between
  two fits, a run's fold frames do not. Everything kept dies when the block ends, so at most one
  fold's matrices are alive; shared arrays are read-only.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

T = TypeVar("T")


@dataclass(eq=False)
class _Entry:
    """What is kept for one frame of an open ``shared_fold`` block."""

    frame: pd.DataFrame  # held so that id(frame) cannot be reused while the entry lives
    root: int  # id of the block's frame: the entry dies with that block
    parent: _Entry | None = None
    rows: npt.NDArray[np.bool_] | None = None  # this frame's rows of the parent's
    array: npt.NDArray[np.float32] | None = None
    children: dict[bytes, pd.DataFrame] = field(default_factory=dict)
    objects: dict[Hashable, Any] = field(default_factory=dict)


_ENTRIES: dict[int, _Entry] = {}  # id(frame) -> entry, for frames of open blocks only
_LOCK = threading.RLock()


@contextmanager
def shared_fold(X: pd.DataFrame) -> Iterator[None]:
    """Share row selections, float32 matrices and library datasets of ``X`` inside the block.

    Args:
        X: The fold's feature frame; it must not be modified while the block is open.

    Nested blocks over the same frame are one block (the outermost one ends it).
    """
    with _LOCK:
        if id(X) in _ENTRIES:
            owner = False
        else:
            _ENTRIES[id(X)] = _Entry(X, root=id(X))
            owner = True
    try:
        yield
    finally:
        if owner:
            with _LOCK:
                for key in [k for k, e in _ENTRIES.items() if e.root == id(X)]:
                    del _ENTRIES[key]


def _entry(X: Any) -> _Entry | None:
    entry = _ENTRIES.get(id(X))
    return entry if entry is not None and entry.frame is X else None


def take_rows(X: pd.DataFrame, rows: npt.NDArray[np.bool_]) -> pd.DataFrame:
    """``X[rows]``; inside a ``shared_fold`` block over ``X`` (or a frame taken from it), the
    same frame object for the same rows every time.

    Args:
        X: Feature frame.
        rows: Boolean mask of ``len(X)``.

    Returns:
        The selected rows, in ``X``'s order (``X`` itself when every row is selected).
    """
    rows = np.asarray(rows, dtype=bool)
    entry = _entry(X)
    if entry is None:
        return X if rows.all() else X[rows]
    key = hashlib.blake2b(np.packbits(rows).tobytes(), digest_size=16).digest()
    with _LOCK:
        child = entry.children.get(key)
        if child is None:
            child = X if rows.all() else X[rows]
            entry.children[key] = child
            if child is not X:
                _ENTRIES[id(child)] = _Entry(child, root=entry.root, parent=entry, rows=rows)
    return child


def float32_features(X: pd.DataFrame) -> npt.NDArray[np.float32]:
    """``X`` as a C-contiguous float32 array ``(n_rows, F)``, NaN kept.

    Inside a ``shared_fold`` block the array is built once per frame (from the parent frame's
    array when that exists) and returned read-only to every caller; elsewhere it is a fresh
    array on each call.
    """
    entry = _entry(X)
    if entry is None:
        return _to_float32(X)
    with _LOCK:
        if entry.array is None:
            parent = entry.parent
            if parent is not None and parent.array is not None and entry.rows is not None:
                array = parent.array[entry.rows]  # (n_rows, F): rows of the parent's matrix
            else:
                array = _to_float32(X)
            array.flags.writeable = False
            entry.array = array
        return entry.array


def shared(X: Any, key: Hashable, build: Callable[[], T]) -> T:
    """``build()``, kept under ``key`` with ``X`` while a ``shared_fold`` block holds ``X``.

    Args:
        X: The frame the object is built from.
        key: Everything besides ``X`` the object depends on (library, parameters, label digest).
        build: Makes the object; called once per ``(X, key)`` inside a block, on every call
            elsewhere.

    Returns:
        What ``build`` returned, possibly on an earlier call. Callers must not modify it.
    """
    entry = _entry(X)
    if entry is None:
        return build()
    with _LOCK:
        if key not in entry.objects:
            entry.objects[key] = build()
        return entry.objects[key]


def digest(values: npt.NDArray[Any]) -> bytes:
    """A 16-byte digest of an array's bytes and shape, for keys of :func:`shared`."""
    values = np.ascontiguousarray(values)
    h = hashlib.blake2b(digest_size=16)
    h.update(str((values.dtype.str, values.shape)).encode())
    h.update(values.data)
    return h.digest()


def fit_rows(
    X: pd.DataFrame, y: pd.Series, rows: npt.NDArray[np.bool_], model: Any = None
) -> tuple[pd.DataFrame, pd.Series]:
    """The ``rows`` of ``(X, y)`` a model fits on (or early-stops on), through :func:`take_rows`.

    Rows whose label is NaN are dropped here, once per fold, rather than by every model's
    ``fit`` from its own copy; a ``model`` whose class sets ``_keep_unlabelled_rows`` keeps them
    (``None``: a valid window, never kept). When no row is labelled all rows are kept, so that
    the model's own validation names the problem.
    """
    rows = np.asarray(rows, dtype=bool)
    if not getattr(model, "_keep_unlabelled_rows", False):
        labelled = rows & y.notna().to_numpy()
        rows = labelled if labelled.any() else rows
    return take_rows(X, rows), y[rows]


_ROW_BLOCK = 4096  # rows cast per step: the source and target blocks stay in cache


def _to_float32(X: pd.DataFrame) -> npt.NDArray[np.float32]:
    # a single float64 block comes out as an (n, F) view of pandas' (F, n) block: cast and
    # transpose it in one pass, row block by row block, without an intermediate copy
    values = X.to_numpy(dtype=np.float64, na_value=np.nan)
    out = np.empty(values.shape, dtype=np.float32)
    for start in range(0, len(values), _ROW_BLOCK):
        out[start : start + _ROW_BLOCK] = values[start : start + _ROW_BLOCK]
    return out
