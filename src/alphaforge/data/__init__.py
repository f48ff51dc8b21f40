"""Market data in, validated Panel out.

``load_panel`` reads a file, a built-in dataset or a synthetic spec and returns a *Panel*: a long
frame indexed by ``(timestamp, symbol)`` with float64 ``open, high, low, close, volume`` (and
``adj_close`` when the source has it). See :mod:`alphaforge.data.schema` for the full contract.
"""

from alphaforge.data.builtin import BUILTIN, BuiltinDataset, builtin_datasets
from alphaforge.data.io import read_table, write_repair_report
from alphaforge.data.loader import load_panel
from alphaforge.data.schema import (
    COLUMNS,
    INDEX_NAMES,
    OPTIONAL_COLUMNS,
    PRICE_COLUMNS,
    describe_panel,
    validate_panel,
)
from alphaforge.data.synthetic import synthetic_panel

__all__ = [
    "BUILTIN",
    "COLUMNS",
    "INDEX_NAMES",
    "OPTIONAL_COLUMNS",
    "PRICE_COLUMNS",
    "BuiltinDataset",
    "builtin_datasets",
    "describe_panel",
    "load_panel",
    "read_table",
    "synthetic_panel",
    "validate_panel",
    "write_repair_report",
]
