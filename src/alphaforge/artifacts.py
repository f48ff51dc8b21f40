"""The files of a run directory: their names, in one place for ``run``, ``report`` and ``backtest``.

::

    config.yaml                  resolved config
    predictions.parquet          timestamp, symbol, model, fold, split (valid|test), y_true, y_pred
    metrics.json                 per model: overall and per fold, for valid and test
    folds.json                   each fold's segment boundaries
    backtest.parquet             per-bar portfolio returns of each model's test predictions, at the
                                 configured delay ("base") and one bar later ("lagged")
    returns.parquet              one-bar returns the backtest used (for `alphaforge backtest`)
    feature_importance.parquet   tree models' importances per fold
    history.parquet              neural models' training curves per fold
    ensemble_components.parquet  residual ensembles: base, residual and final per row
    fusion_weights.json          fusion ensembles' weights and intercept per fold
    report.html                  self-contained report
    models/<model>/fold_<k>/     saved models (native formats + meta.json)
    run.log                      the library's log of the run
    manifest.json                size and SHA-256 of every other file (but report.html and
                                 run.log, which are rewritten), sealed; checked before reading

A run directory is claimed with a lock beside it before any work (:func:`claim_run_dir`), built
in a temporary folder and renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from alphaforge.errors import DataError, OutputError
from alphaforge.utils.integrity import digest_tree, file_digest, read_json, seal, verify_tree
from alphaforge.utils.io import atomic_write_text
from alphaforge.utils.locks import exclusive_output, file_lock

CONFIG = "config.yaml"
PREDICTIONS = "predictions.parquet"
METRICS = "metrics.json"
FOLDS = "folds.json"
BACKTEST = "backtest.parquet"
RETURNS = "returns.parquet"
FEATURE_IMPORTANCE = "feature_importance.parquet"
HISTORY = "history.parquet"
GATES = "gates.parquet"
TUNING = "tuning.parquet"
ENSEMBLE_COMPONENTS = "ensemble_components.parquet"
FUSION_WEIGHTS = "fusion_weights.json"
REPORT = "report.html"
RUN_LOG = "run.log"
MODELS_DIR = "models"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "alphaforge-run"
#: files a run directory's manifest leaves out: the manifest, and files rewritten by ``report``
UNCHECKED = (MANIFEST, REPORT, RUN_LOG)

logger = logging.getLogger(__name__)

#: what a fitted model's ``run_outputs()`` may return, and the file each one is written to
MODEL_OUTPUTS = {"ensemble_components": ENSEMBLE_COMPONENTS, "fusion_weights": FUSION_WEIGHTS}

#: files every run directory has (the report needs them)
REQUIRED = (CONFIG, METRICS, PREDICTIONS)


def model_dir(run_dir: Path, model: str, fold: int) -> Path:
    """Where a run saves the model ``model`` fitted in fold ``fold``."""
    return run_dir / MODELS_DIR / model / f"fold_{fold}"


def checkpoint_root(run_dir: Path) -> Path:
    """The folder beside ``run_dir`` that holds training checkpoints until the run completes."""
    return run_dir.with_name(run_dir.name + ".ckpt")


def to_json(obj: Any) -> str:
    """``obj`` as indented JSON; numpy scalars become Python numbers, NaN/inf become null."""
    return json.dumps(jsonable(obj), indent=2)


def jsonable(obj: Any) -> Any:
    """``obj`` with string keys, numpy scalars as Python numbers and non-finite floats as None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


@contextlib.contextmanager
def claim_run_dir(
    output_dir: str, name: str, out: str | os.PathLike[str] | None, overwrite: bool
) -> Iterator[tuple[Path, Path]]:
    """Lock a run directory and yield ``(run_dir, temporary folder to build it in)``.

    ``out`` given: that folder, refused if another live run is writing it or (without
    ``overwrite``) it is not empty. ``out`` None: ``<output_dir>/<name>-<UTC time>``, with
    ``-2``, ``-3`` ... when that name is taken, also by a concurrent run. The folder appears,
    complete, when the ``with`` block ends without error.
    """
    if out is not None:
        with exclusive_output(out, overwrite=overwrite) as tmp:
            yield Path(out), tmp
        return
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    slug = re.sub(r"[^A-Za-z0-9_\-]", "-", name)[:64] or "run"
    base = Path(output_dir) / f"{slug}-{stamp}"
    for n in range(1, 1000):
        run_dir = base if n == 1 else base.with_name(f"{base.name}-{n}")
        if run_dir.exists():
            continue
        with contextlib.ExitStack() as claim:
            try:
                tmp = claim.enter_context(exclusive_output(run_dir, what="output_dir"))
            except OutputError:  # taken by a concurrent run a moment ago
                continue
            yield run_dir, tmp
            return
    raise OutputError(f"output_dir: no free run directory name for {base}")


def write_manifest(run_dir: Path) -> None:
    """Record the size and SHA-256 of every file of ``run_dir`` (see :data:`UNCHECKED`)."""
    files = digest_tree(run_dir, skip=UNCHECKED)
    record = seal({"format": MANIFEST_FORMAT, "files": files})
    atomic_write_text(run_dir / MANIFEST, json.dumps(record, indent=1) + "\n")


def verify_run(run_dir: Path, names: Iterable[str] | None = None) -> None:
    """Check the files of ``run_dir`` that are about to be read against its manifest.

    Args:
        run_dir: The run directory.
        names: Relative paths to check (those present in the manifest); default every file but
            the saved models (checked by their own ``meta.json`` when loaded).

    Raises:
        DataError: a damaged manifest, or a listed file missing, truncated or altered; the
            message names the file. A run written before manifests existed is read unchecked,
            with a warning.
    """
    path = run_dir / MANIFEST
    if not path.exists():
        logger.warning("%s has no %s: its files are read unchecked", run_dir, MANIFEST)
        return
    record = read_json(path, what="run manifest", sealed=True)
    if record.get("format") != MANIFEST_FORMAT or not isinstance(record.get("files"), dict):
        raise DataError(f"{MANIFEST} is not a run manifest", path=str(run_dir))
    files = record["files"]
    if names is None:
        names = [r for r in files if not r.startswith(f"{MODELS_DIR}/")]
    for rel in names:
        if rel not in files and (run_dir / rel).exists():
            raise DataError(
                f"run file {rel} is not in the run's {MANIFEST} (added after the run)",
                path=str(run_dir),
            )
    verify_tree(run_dir, files, what="run", only=names)


def run_lock(run_dir: Path) -> contextlib.AbstractContextManager[None]:
    """The run directory's lock (the one its run held), for rewriting files of a finished run."""
    return file_lock(run_dir, wait=60.0, what=f"run directory {run_dir}")


def update_manifest(run_dir: Path, names: Iterable[str]) -> None:
    """Re-record ``names`` after rewriting them (``backtest --save``); call under
    :func:`run_lock`."""
    path = run_dir / MANIFEST
    if not path.exists():
        return  # an unchecked older run stays unchecked
    record = read_json(path, what="run manifest", sealed=True)
    for rel in names:
        file = run_dir / rel
        record["files"][rel] = {"size": file.stat().st_size, "sha256": file_digest(file)}
    atomic_write_text(path, json.dumps(seal(record), indent=1) + "\n")
