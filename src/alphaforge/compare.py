"""``compare_runs``: models of several runs side by side, on the bars all of them predicted.

Each run directory's ``predictions.parquet`` is read; every (timestamp, symbol) row of the split
that every selected model predicted, with a label, is kept, so the models are scored on the same
bars. Per model: the mean per-date Rank IC, its Newey-West t, fixed-b critical value and
studentized block-bootstrap interval (:func:`alphaforge.stats.mean_test`), and the paired
per-date Rank IC difference against the first model with its own t and interval. Pairing on dates
removes the market-wide noise both models share, so a difference can be significant when the two
intervals overlap.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alphaforge import artifacts
from alphaforge.errors import ConfigError, DataError
from alphaforge.metrics import rank_ic_series
from alphaforge.stats import mean_test

__all__ = ["compare_runs"]

_KEY = ["timestamp", "symbol"]
_COLUMNS = [*_KEY, "model", "split", "y_true", "y_pred"]


def compare_runs(
    run_dirs: Sequence[str | os.PathLike[str]],
    split: str = "test",
    *,
    models: Sequence[str] | None = None,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Score the models of run directories on their common bars, against the first model.

    Args:
        run_dirs: Run directories (``alphaforge run`` output); models are named ``run/model``
            with ``run`` the directory name (its full path if two names clash).
        split: ``"test"`` or ``"valid"``.
        models: Keep only these, each ``run/model`` or a bare model name (every run's model of
            that name); default every model of every run. The first one kept is the reference.
        alpha: Two-sided level of tests and intervals.
        seed: Seed of the bootstraps.

    Returns:
        Frame indexed by ``model`` (reference first) with ``n_dates``, ``rank_ic``, ``t``,
        ``crit``, ``ci_lo``, ``ci_hi``, ``significant`` and, against the reference, ``diff``
        (mean paired Rank IC difference), ``diff_t``, ``diff_crit``, ``diff_ci_lo``,
        ``diff_ci_hi``, ``diff_significant`` (NaN/False on the reference row). ``attrs`` holds
        ``n_bars`` (common rows), ``horizon`` and ``reference``.

    Raises:
        DataError: A run directory or its predictions file is missing or malformed, runs score
            different labels, or the models share no bar.
        ConfigError: No run directory, or ``models`` names a model no run has.
    """
    if not run_dirs:
        raise ConfigError("compare needs at least one run directory")
    runs = [Path(d) for d in run_dirs]
    names = _run_names(runs)
    preds = pd.concat(
        [_read(run, name, split) for run, name in zip(runs, names, strict=True)],
        ignore_index=True,
    )
    keys = _select(list(dict.fromkeys(preds["model"])), models)
    preds = preds[preds["model"].isin(keys)]
    pred = preds.set_index([*_KEY, "model"])["y_pred"].unstack("model")[keys]
    true = preds.set_index([*_KEY, "model"])["y_true"].unstack("model")[keys]
    ok = np.isfinite(pred.to_numpy()).all(axis=1) & np.isfinite(true.to_numpy()).all(axis=1)
    if not ok.any():
        raise DataError(
            f"{', '.join(keys)}: no {split} bar has a prediction of every model and a label"
        )
    pred, true = pred[ok], true[ok]
    _check_labels(true, keys)
    horizon = max(_horizon(run) for run in runs)
    y = true[keys[0]]
    ics = {m: rank_ic_series(y, pred[m]) for m in keys}
    rows = []
    for m in keys:
        row = _row(mean_test(ics[m], horizon=horizon, alpha=alpha, seed=seed))
        # paired per-date difference; the reference against itself is no test
        diff = _row(mean_test(ics[m] - ics[keys[0]], horizon=horizon, alpha=alpha, seed=seed))
        if m == keys[0]:
            diff = {k: (False if k == "significant" else np.nan) for k in diff}
        diff.pop("n_dates")
        row.update({("diff" if k == "rank_ic" else f"diff_{k}"): v for k, v in diff.items()})
        rows.append({"model": m, **row})
    out = pd.DataFrame(rows).set_index("model")
    out.attrs = {"n_bars": int(ok.sum()), "horizon": horizon, "reference": keys[0]}
    return out


def _row(test: dict[str, Any]) -> dict[str, Any]:
    """The columns of one :func:`mean_test` result."""
    lo, hi = test["ci"]
    return {
        "n_dates": test["n"],
        "rank_ic": test["mean"],
        "t": test["t"],
        "crit": test["crit"],
        "ci_lo": lo,
        "ci_hi": hi,
        "significant": test["significant"],
    }


def _run_names(runs: list[Path]) -> list[str]:
    """Directory names, or full paths where two runs share a name."""
    names = [r.name for r in runs]
    return [str(r) if names.count(r.name) > 1 else r.name for r in runs]


def _read(run: Path, name: str, split: str) -> pd.DataFrame:
    """One run's ``split`` predictions, models renamed ``name/model``."""
    path = run / artifacts.PREDICTIONS
    if not run.is_dir():
        raise DataError(f"{run}: run directory not found")
    if not path.is_file():
        raise DataError(f"{path}: not found; is {run} a run directory?")
    artifacts.verify_run(run, [artifacts.PREDICTIONS, artifacts.METRICS])
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: cannot be read ({exc})") from None
    missing = sorted(set(_COLUMNS) - set(frame.columns))
    if missing:
        raise DataError(f"{path}: missing columns {missing}; got {list(frame.columns)}")
    frame = frame.loc[frame["split"] == split, _COLUMNS].copy()
    if frame.empty:
        raise DataError(f"{path}: no {split!r} rows")
    frame["model"] = name + "/" + frame["model"].astype(str)
    frame["symbol"] = frame["symbol"].astype(str)
    if frame.duplicated([*_KEY, "model"]).any():
        raise DataError(f"{path}: a model predicts one (timestamp, symbol) twice in {split!r}")
    return frame


def _select(keys: list[str], models: Sequence[str] | None) -> list[str]:
    """The models kept, in the order asked (or the runs' order)."""
    if not models:
        return keys
    out: list[str] = []
    for m in models:
        found = [k for k in keys if k == m or k.split("/")[-1] == m]
        if not found:
            raise ConfigError(f"--model {m!r}: no such model; available: {keys}")
        out += [k for k in found if k not in out]
    return out


def _check_labels(true: pd.DataFrame, keys: list[str]) -> None:
    """Every model's labels must equal the first one's on the common bars."""
    ref = true[keys[0]].to_numpy()
    for m in keys[1:]:
        if not np.allclose(true[m].to_numpy(), ref, rtol=1e-9, atol=1e-12):
            raise DataError(
                f"{m}: its labels differ from {keys[0]}'s on the common bars; "
                "compare needs runs of the same label"
            )


def _horizon(run: Path) -> int:
    """The label horizon recorded in ``metrics.json`` (1 when it is absent)."""
    try:
        metrics = json.loads((run / artifacts.METRICS).read_text(encoding="utf-8"))
        return max(int(metrics["label"]["horizon"]), 1)
    except (OSError, ValueError, KeyError, TypeError):
        return 1
