"""Read a run directory into one :class:`RunData`, checking every file the report uses.

Required: ``config.yaml``, ``metrics.json``, ``predictions.parquet``. Read when present:
``folds.json``, ``backtest.parquet``, ``feature_importance.parquet``, ``history.parquet``,
``gates.parquet``, ``tuning.parquet`` and the tail of ``run.log``. A missing required file, an
unreadable file or a file without its columns raises :class:`~alphaforge.errors.DataError` naming
it; absent optional files become ``None`` and their report sections are left out.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from alphaforge import artifacts as files
from alphaforge.errors import DataError

logger = logging.getLogger(__name__)

REQUIRED_FILES = files.REQUIRED
# optional parquet file -> attribute of RunData and the columns the report needs from it
OPTIONAL_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    files.BACKTEST: ("backtest", ("model", "variant", "timestamp", "gross", "net")),
    files.FEATURE_IMPORTANCE: ("importance", ("model", "fold", "feature", "importance")),
    files.HISTORY: ("history", ("model", "fold", "epoch", "train_loss", "valid_loss")),
    files.GATES: ("gates", ("model", "fold", "feature", "gate")),
    files.TUNING: ("tuning", ("study", "trial", "value", "state")),
}
PREDICTION_COLUMNS = ("timestamp", "symbol", "model", "fold", "split", "y_true", "y_pred")
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class RunData:
    """Everything the report reads from one run directory.

    Attributes:
        run_dir: The run directory.
        config_text: ``config.yaml`` verbatim.
        config: ``config.yaml`` parsed (empty if it is not a YAML mapping).
        metrics: ``metrics.json`` parsed.
        predictions: ``predictions.parquet``; timestamps tz-naive (UTC if they were aware).
        folds: ``folds.json`` entries, or None when absent.
        backtest: ``backtest.parquet`` (timestamps tz-naive), or None.
        importance: ``feature_importance.parquet``, or None.
        history: ``history.parquet`` (training curves), or None.
        gates: ``gates.parquet`` (feature gates), or None.
        tuning: ``tuning.parquet`` (tuning trials), or None.
        log_tail: Last lines of ``run.log``, or None.
    """

    run_dir: Path
    config_text: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    folds: list[dict[str, Any]] | None = None
    backtest: pd.DataFrame | None = None
    importance: pd.DataFrame | None = None
    history: pd.DataFrame | None = None
    gates: pd.DataFrame | None = None
    tuning: pd.DataFrame | None = None
    log_tail: str | None = None

    @property
    def model_entries(self) -> dict[str, dict[str, Any]]:
        """``metrics.json["models"]`` (name -> entry), empty dict if absent or malformed."""
        models = self.metrics.get("models")
        return models if isinstance(models, dict) else {}

    def is_baseline(self, model: str) -> bool:
        """Whether ``metrics.json`` marks ``model`` as a baseline."""
        entry = self.model_entries.get(model)
        return bool(entry.get("baseline", False)) if isinstance(entry, dict) else False

    def models(self) -> list[str]:
        """Model names: ``metrics.json`` order, then any only found in the predictions."""
        names = [str(m) for m in self.model_entries]
        extra = sorted(set(self.predictions["model"].astype(str)) - set(names))
        return names + extra

    def metric(self, model: str, split: str, name: str) -> float:
        """One overall metric of ``model`` on ``split``; NaN when missing or null."""
        entry = self.model_entries.get(model)
        try:
            return as_float(entry[split]["overall"][name])  # type: ignore[index]
        except (KeyError, TypeError):
            return math.nan

    def backtest_summary(self, model: str, variant: str, kind: str, key: str) -> float:
        """``metrics.json`` backtest summary value, e.g. ``("base", "net", "sharpe")``; else NaN."""
        entry = self.model_entries.get(model)
        try:
            return as_float(entry["backtest"][variant][kind][key])  # type: ignore[index]
        except (KeyError, TypeError):
            return math.nan


def as_float(value: Any) -> float:
    """``value`` as a float; NaN for None, booleans and anything that is not a number."""
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def load_run(run_dir: str | os.PathLike[str]) -> RunData:
    """Read and check the files of a run directory.

    Args:
        run_dir: Directory written by :func:`alphaforge.run.run_experiment`.

    Returns:
        The run's contents; optional files that are absent are None.

    Raises:
        DataError: ``run_dir`` is not a directory, a required file is missing, or a file cannot
            be parsed or lacks the columns the report needs (the message names the file).
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise DataError("run directory not found", path=str(root))
    for name in REQUIRED_FILES:
        if not (root / name).is_file():
            raise DataError(
                f"required file {name} is missing from the run directory", path=str(root / name)
            )
    files.verify_run(root)  # a truncated or altered file is named before anything is read
    config_text = _read_text(root / files.CONFIG)
    try:
        parsed = yaml.safe_load(config_text)
    except yaml.YAMLError as exc:
        raise DataError(f"not valid YAML: {exc}", path=str(root / files.CONFIG)) from None
    metrics = _read_json(root / files.METRICS)
    if not isinstance(metrics, dict):
        raise DataError(
            f"expected a JSON object, got {type(metrics).__name__}", path=str(root / files.METRICS)
        )
    preds = read_table(root / files.PREDICTIONS, PREDICTION_COLUMNS)
    preds["model"] = preds["model"].astype(str)
    preds["symbol"] = preds["symbol"].astype(str)
    preds["split"] = preds["split"].astype(str)
    for col in ("y_true", "y_pred"):
        preds[col] = pd.to_numeric(preds[col], errors="coerce").astype("float64")
    optional: dict[str, Any] = {}
    for name, (attr, cols) in OPTIONAL_TABLES.items():
        if (root / name).is_file():
            optional[attr] = read_table(root / name, cols)
    if optional.get("backtest") is not None:
        optional["backtest"]["model"] = optional["backtest"]["model"].astype(str)
    folds = None
    if (root / files.FOLDS).is_file():
        raw = _read_json(root / files.FOLDS)
        if not isinstance(raw, list):
            raise DataError(
                f"expected a JSON list of folds, got {type(raw).__name__}",
                path=str(root / files.FOLDS),
            )
        folds = [f for f in raw if isinstance(f, dict)]
    log_tail = None
    if (root / files.RUN_LOG).is_file():
        lines = _read_text(root / files.RUN_LOG).splitlines()
        log_tail = "\n".join(lines[-LOG_TAIL_LINES:])
    logger.debug(
        "report: loaded %s (%d prediction rows, optional: %s)",
        root,
        len(preds),
        ", ".join(sorted(optional)) or "none",
    )
    return RunData(
        run_dir=root,
        config_text=config_text,
        config=parsed if isinstance(parsed, dict) else {},
        metrics=metrics,
        predictions=preds,
        folds=folds,
        log_tail=log_tail,
        **optional,
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", path=str(path)) from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON: {exc}", path=str(path)) from None


def read_table(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read a parquet file, check its columns and make ``timestamp`` tz-naive datetime64."""
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise DataError(f"cannot read parquet: {exc}", path=str(path)) from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(missing)}; expected {', '.join(columns)}, "
            f"got {', '.join(map(str, frame.columns))}",
            path=str(path),
        )
    if "timestamp" in frame.columns:
        frame["timestamp"] = naive_timestamps(frame["timestamp"], path)
    return frame


def naive_timestamps(values: pd.Series, path: Path | None = None) -> pd.Series:
    """``values`` as tz-naive datetime64 (aware ones converted to UTC first), for plotting."""
    try:
        ts = pd.to_datetime(values)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"column timestamp is not datetime-like: {exc}", path=str(path) if path else None
        ) from None
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts


def get_path(mapping: Mapping[str, Any] | None, *keys: str) -> Any:
    """``mapping[k1][k2]...`` or None when any level is missing or not a mapping."""
    node: Any = mapping
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node
