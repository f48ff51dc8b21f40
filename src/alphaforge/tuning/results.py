"""What a tuning run leaves behind: per-study results, the hyperparams files and run summaries.

Files under ``root`` (all written atomically)::

    hyperparams/optimized/{model}/{SYMBOL}.json   the study's best, always
    hyperparams/best/{SYMBOL}.json                only when the promotion gate says so
    results/tune_{timestamp}.json                 run summary (:class:`TuneSummary`)

Records are sealed (:func:`alphaforge.utils.integrity.seal`): an altered or truncated record is an
error naming it, never a silently missing best. The gate is a compare-and-swap: the stored best is
re-read and replaced under the inter-process lock of ``hyperparams/best/{SYMBOL}.json``
(:func:`alphaforge.utils.locks.file_lock`; on a shared root, the shared file system's lock), so
concurrent ``tune`` processes for one symbol, on one machine or many, end with the best of
everything any of them promoted.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from alphaforge import __version__
from alphaforge.errors import DataError
from alphaforge.registry import get_model
from alphaforge.tuning.gate import Direction, improvement, promote
from alphaforge.tuning.objective import fit_score
from alphaforge.tuning.search import TuneJob, study_name
from alphaforge.tuning.storage import open_storage
from alphaforge.tuning.windows import SymbolData
from alphaforge.utils import integrity
from alphaforge.utils.io import atomic_write_text, safe_filename
from alphaforge.utils.locks import file_lock

__all__ = ["SymbolResult", "TuneSummary", "finish_study", "tune_history", "write_summary"]

logger = logging.getLogger(__name__)
#: how long a gate waits for another process's promotion of the same symbol
GATE_WAIT_S = 120.0


@dataclass
class SymbolResult:
    """Outcome of one ``(symbol, model)`` study in one run.

    Attributes:
        symbol: The study's symbol.
        model: The study's registry name.
        n_trials: Trials completed in the study after this run (all runs together).
        n_failed: Trials in FAIL state in the study.
        n_pruned: Trials the pruner stopped early (PRUNED state) in the study.
        old_score: Validation score of the stored ``hyperparams/best`` record (None: none).
        new_score: Best validation score of the study (None: no completed trial).
        improvement: Relative improvement of ``new`` over ``old`` as a fraction (0.02 = 2%),
            sign-adjusted so that positive is better (None when undefined).
        promoted: Whether ``hyperparams/best/{SYMBOL}.json`` was written.
        reason: Why it was or was not promoted, one line.
        test_score: The metric on the held-out test window for the best params.
        params: The best params (config overrides for ``from_params``).
        wall_s: Seconds spent on this study's promotion gate in this run.
    """

    symbol: str
    model: str
    n_trials: int = 0
    n_failed: int = 0
    n_pruned: int = 0
    old_score: float | None = None
    new_score: float | None = None
    improvement: float | None = None
    promoted: bool = False
    reason: str = ""
    test_score: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0


@dataclass
class TuneSummary:
    """What :func:`~alphaforge.tuning.tune` did; also written as ``results/tune_{timestamp}.json``.

    Attributes:
        results: One :class:`SymbolResult` per ``(symbol, model)``.
        metric: The validation metric.
        direction: Whether lower or higher is better.
        storage: The Optuna storage used, as a string (URL or ``journal:PATH``);
            :func:`~alphaforge.tuning.open_storage` opens it.
        workers: Worker processes.
        trials: New trials requested per study.
        wall_s: Seconds for the whole run.
        timestamp: The run's UTC timestamp, in the names of its files.
        summary_path: The summary file written.
        log_path: The run's log file.
    """

    results: list[SymbolResult]
    metric: str
    direction: Direction
    storage: str
    workers: int
    trials: int
    wall_s: float
    timestamp: str
    summary_path: Path | None = None
    log_path: Path | None = None

    @property
    def n_promoted(self) -> int:
        """Number of ``(symbol, model)`` studies whose best params were promoted."""
        return sum(r.promoted for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (paths as strings, totals added)."""
        out = asdict(self)
        out["summary_path"] = str(self.summary_path) if self.summary_path else None
        out["log_path"] = str(self.log_path) if self.log_path else None
        out["totals"] = {
            "studies": len(self.results),
            "promoted": self.n_promoted,
            "trials": sum(r.n_trials for r in self.results),
        }
        return out


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's content; None when it is missing or unreadable (logged)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        logger.warning("%s: unreadable (%s); treated as missing", path, exc)
        return None


def read_best(path: Path) -> dict[str, Any] | None:
    """The stored best record at ``path``; None when there is none.

    Raises:
        DataError: the record is truncated, not a JSON object, or altered (its seal differs);
            the gate never treats a damaged best as missing.
    """
    if not path.is_file():
        return None
    record = integrity.read_json(path, what="stored best config")
    if not isinstance(record, dict):
        raise DataError("stored best config is not a JSON object", path=str(path))
    return record


def _record(
    res: SymbolResult, best: optuna.trial.FrozenTrial, d: SymbolData, job: TuneJob, stamp: str
) -> dict[str, Any]:
    """The hyperparams record of a study's best trial."""
    c = job.config
    return {
        "symbol": res.symbol,
        "model": res.model,
        "params": res.params,
        "val_score": res.new_score,
        "test_score": res.test_score,
        "metric": c.metric,
        "direction": job.direction,
        "label": c.label,
        "horizon": c.horizon,
        "val_bars": c.val,
        "test_bars": c.test,
        "folds": c.folds,
        "stop_bars": c.stop_bars,
        "study": study_name(res.symbol, res.model),
        "trial": best.number,
        "n_trials": res.n_trials,
        "data_hash": d.data_hash,
        "timestamp": stamp,
        "alphaforge_version": __version__,
    }


def finish_study(
    symbol: str, model: str, d: SymbolData, job: TuneJob, root: Path, stamp: str
) -> SymbolResult:
    """Score a study's best on the test window, write its records and apply the gate.

    ``hyperparams/optimized/{model}/{SYMBOL}.json`` always receives the best trial;
    ``hyperparams/best/{SYMBOL}.json`` only when :func:`~alphaforge.tuning.promote` accepts it
    against the stored record (same metric), with ``job.config.min_improvement`` percent and
    ``job.config.force``.

    Args:
        symbol: The study's symbol.
        model: The study's registry name.
        d: The symbol's rows and windows.
        job: The run's job.
        root: Directory of ``hyperparams/``.
        stamp: The run's timestamp, recorded in the files.

    Returns:
        The study's :class:`SymbolResult`.
    """
    c = job.config
    res = SymbolResult(symbol, model)
    try:
        study = optuna.load_study(
            study_name=study_name(symbol, model), storage=open_storage(job.storage)
        )
    except KeyError:  # the timeout ran out before this study started
        res.reason = "no completed trials (timeout before the study started)"
        return res
    trials = study.get_trials(deepcopy=False)
    res.n_trials = sum(t.state == TrialState.COMPLETE for t in trials)
    res.n_failed = sum(t.state == TrialState.FAIL for t in trials)
    res.n_pruned = sum(t.state == TrialState.PRUNED for t in trials)
    best_path = root / "hyperparams" / "best" / f"{safe_filename(symbol)}.json"
    if res.n_trials == 0:
        res.old_score = _comparable(read_best(best_path), c.metric)
        res.reason = "no completed trials"
        return res
    best = study.best_trial
    res.params = dict(best.user_attrs.get("params", best.params))
    res.new_score = float(best.value)
    best_estimator = get_model(model).from_params(res.params, random_state=c.seed)
    res.test_score = fit_score(best_estimator, d, c.metric, on="test")
    record = integrity.seal(_record(res, best, d, job, stamp))
    text = json.dumps(record, indent=2, allow_nan=True) + "\n"
    atomic_write_text(
        root / "hyperparams" / "optimized" / model / f"{safe_filename(symbol)}.json", text
    )
    # compare-and-swap: read, decide and write the best under one inter-process lock
    with file_lock(best_path, wait=GATE_WAIT_S, what=f"the best config of {symbol}"):
        _gate(res, read_best(best_path), job, best_path, text)
    logger.info(
        "%s %s: val %.6g (old %s) test %.6g: %s",
        symbol,
        model,
        res.new_score,
        res.old_score,
        res.test_score,
        res.reason,
    )
    return res


def _comparable(old: dict[str, Any] | None, metric: str) -> float | None:
    """The stored best's score when it was measured with ``metric``."""
    return old.get("val_score") if old is not None and old.get("metric") == metric else None


def _gate(
    res: SymbolResult, old: dict[str, Any] | None, job: TuneJob, best_path: Path, text: str
) -> None:
    """Apply the promotion gate to ``res`` against ``old``; write ``text`` if it passes."""
    c = job.config
    res.old_score = _comparable(old, c.metric)
    if old is not None and old.get("metric") not in (None, c.metric) and not c.force:
        res.reason = f"stored best uses metric {old.get('metric')!r}; not comparable"
        return
    if res.old_score is not None:
        res.improvement = improvement(res.old_score, res.new_score, job.direction)
    res.promoted, res.reason = promote(
        res.old_score, res.new_score, job.direction, c.min_improvement, c.force
    )
    if res.promoted:
        atomic_write_text(best_path, text)


def write_summary(summary: TuneSummary) -> None:
    """Write ``summary`` to its ``summary_path`` (atomically, as indented JSON)."""
    assert summary.summary_path is not None  # set by tune before writing
    atomic_write_text(
        summary.summary_path, json.dumps(summary.to_dict(), indent=2, default=str) + "\n"
    )


def tune_history(root: str | os.PathLike[str] = "tuning") -> list[dict[str, Any]]:
    """Every ``results/tune_*.json`` summary under ``root``, oldest first (unreadable skipped).

    Args:
        root: The runs' ``root`` directory.

    Returns:
        The summaries as dicts (:meth:`TuneSummary.to_dict`), each with its ``path`` added.
    """
    out = []
    for path in sorted(Path(root).glob("results/tune_*.json")):
        rec = read_json(path)
        if rec is not None:
            rec["path"] = str(path)
            out.append(rec)
    return out
