"""Typed errors. Every user-facing failure says what was wrong, where, what was expected and what
came.

The CLI prints one red line and exits with status 2 for any :class:`AlphaforgeError`.
"""

from __future__ import annotations

from typing import Any


class AlphaforgeError(Exception):
    """Base class of every error alphaforge raises on purpose."""


class DataError(AlphaforgeError):
    """Bad input data, located as precisely as possible.

    Args:
        message: What is wrong, e.g. ``"high 101.20 < low 102.00"``.
        path: File the data came from (or ``builtin:<name>``), if any.
        symbol: Symbol of the offending row, if known.
        row: 1-based data row number in the source file (header excluded), if known.
        timestamp: Timestamp of the offending row, if known.

    Example:
        ``DataError: prices.csv: symbol 'AAPL', data row 1043 (2021-03-04): high 101.2 < low 102``
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        symbol: str | None = None,
        row: int | None = None,
        timestamp: Any = None,
    ) -> None:
        self.message = message
        self.path = path
        self.symbol = symbol
        self.row = row
        self.timestamp = timestamp
        super().__init__(self._format())

    def _format(self) -> str:
        where: list[str] = []
        if self.symbol is not None:
            where.append(f"symbol {self.symbol!r}")
        if self.row is not None:
            stamp = f" ({self.timestamp})" if self.timestamp is not None else ""
            where.append(f"data row {self.row}{stamp}")  # 1-based, after the header
        elif self.timestamp is not None:
            where.append(f"timestamp {self.timestamp}")
        head = f"{self.path}: " if self.path else ""
        loc = f"{', '.join(where)}: " if where else ""
        return f"{head}{loc}{self.message}"


class ConfigError(AlphaforgeError):
    """Invalid experiment configuration: names the key, what it got and the valid choices."""


class OutputError(AlphaforgeError):
    """An output cannot be written: another live process is writing it, it exists (without
    ``--overwrite``), or the disk is full. Nothing was written."""


class NotFittedError(AlphaforgeError):
    """A model was asked to predict or save before ``fit``."""


class LeakageError(AlphaforgeError):
    """A feature, label, split or model looked at data from after the time it predicts for."""
