"""Tests of alphaforge.tuning end to end: promotion gate, files, storages, crashes, CLI.

Tiny LightGBM (20 rounds, 1 thread) on a small synthetic panel keeps the whole file fast.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import signal
import socket
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from alphaforge.errors import ConfigError, DataError
from alphaforge.registry import get_model
from alphaforge.tuning import (
    OWNER_ATTR,
    PRUNE_EVERY,
    StorageSpec,
    StudyStatus,
    TuneJob,
    TuneSummary,
    cut_windows,
    fit_score,
    fit_score_bank,
    load_tune_config,
    make_tune_config,
    open_storage,
    prepare,
    promote,
    repair_journal,
    resolve_models,
    resolve_storage,
    sweep,
    tune,
)
from alphaforge.tuning import api as tune_api
from alphaforge.tuning import objective as tune_objective
from alphaforge.tuning import storage as tune_storage
from alphaforge.tuning.search import spawn_worker

DATA = "synthetic:n_symbols=3,n_bars=400,seed=1"
SYMS = ["S000", "S001"]
FIXED = {"lightgbm": {"n_estimators": 20, "n_jobs": 1}}


def _tune(root: Path, **kw: object) -> TuneSummary:
    args = {
        "data": DATA,
        "model": "lightgbm",
        "symbols": SYMS,
        "trials": 3,
        "root": root,
        "fixed_params": FIXED,
    }
    return tune(**{**args, **kw})


def _journal_study(root: Path, name: str) -> optuna.Study:
    return optuna.load_study(
        study_name=name, storage=open_storage(f"journal:{root}/optuna.journal")
    )


# ----------------------------------------------------------------------------- gate
@pytest.mark.parametrize(
    ("old", "new", "direction", "force", "expected"),
    [
        (None, 1.0, "minimize", False, True),  # no previous best
        (float("nan"), 1.0, "minimize", False, True),  # unreadable previous score
        (1.0, 0.98, "minimize", False, True),  # 2% better
        (1.0, 0.995, "minimize", False, False),  # 0.5%: under the 1% threshold
        (1.0, 0.99, "minimize", False, False),  # exactly 1%: must be strictly more
        (1.0, 1.05, "minimize", False, False),  # worse
        (0.5, 0.52, "maximize", False, True),  # higher is better
        (0.5, 0.45, "maximize", False, False),
        (-0.10, -0.05, "maximize", False, True),  # negative old score: relative to |old|
        (1.0, 1.05, "minimize", True, True),  # force
        (1.0, float("nan"), "minimize", True, False),  # nothing finite to promote, even forced
        (None, None, "minimize", False, False),
    ],
)
def test_promote(old, new, direction, force, expected):
    ok, reason = promote(old, new, direction, 1.0, force)  # min_improvement 1%
    assert ok is expected
    assert reason


def test_promote_threshold_and_errors():
    assert promote(1.0, 0.95, "minimize", 10.0, False)[0] is False  # 5% < 10%
    assert promote(1.0, 0.95, "minimize", 0.0, False)[0] is True
    assert promote(1.0, 0.95, "minimize", 4.0, False) == (True, "improved +5.00% > 4.00%")
    assert promote(0.0, -0.1, "maximize", 1.0, False) == (
        False,
        promote(0.0, -0.1, "maximize", 1.0, False)[1],
    )
    with pytest.raises(ConfigError):
        promote(1.0, 0.9, "down", 1.0, False)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        promote(1.0, 0.9, "minimize", -0.5, False)


def test_resolve_models_and_storage(tmp_path):
    assert resolve_models("both") == ["lightgbm", "xgboost"]
    assert "zero" not in resolve_models("all") and "lightgbm" in resolve_models("all")
    with pytest.raises(ConfigError, match="unknown model"):
        resolve_models("nope")
    assert resolve_storage(None, tmp_path, 1).url.startswith("sqlite:///")
    assert resolve_storage(None, tmp_path, 2).url == f"journal:{tmp_path}/optuna.journal"
    assert resolve_storage("x.journal", tmp_path, 2) == StorageSpec("journal", "x.journal")
    with pytest.raises(ConfigError, match="SQLite"):
        resolve_storage("sqlite:///x.db", tmp_path, 2)


# ----------------------------------------------------------------------------- end to end
def test_tune_writes_files_then_rerun_promotes_nothing(tmp_path):
    seen: list[list[StudyStatus]] = []
    s1 = _tune(tmp_path, monitor=seen.append)
    assert [st.complete for st in seen[-1]] == [3, 3]
    assert [st.best for st in seen[-1]] == [r.new_score for r in s1.results]
    assert [r.symbol for r in s1.results] == SYMS
    assert all(r.promoted and r.reason == "no previous best" for r in s1.results)
    for sym in SYMS:
        best = json.loads((tmp_path / "hyperparams" / "best" / f"{sym}.json").read_text())
        opt = json.loads(
            (tmp_path / "hyperparams" / "optimized" / "lightgbm" / f"{sym}.json").read_text()
        )
        assert best == opt
        for key in (
            "params",
            "val_score",
            "test_score",
            "metric",
            "direction",
            "model",
            "data_hash",
            "timestamp",
            "alphaforge_version",
        ):
            assert key in best
        assert best["metric"] == "pct_return_mae" and best["direction"] == "minimize"
        assert best["params"]["n_estimators"] == 20 and len(best["data_hash"]) == 64
        study = optuna.load_study(
            study_name=f"{sym}:lightgbm", storage=f"sqlite:///{tmp_path}/optuna.db"
        )
        assert math.isclose(study.best_value, best["val_score"])
    summary = json.loads(s1.summary_path.read_text())
    assert summary["totals"]["promoted"] == 2 and s1.log_path.exists()
    assert "promoted" in s1.log_path.read_text() or s1.log_path.stat().st_size > 0

    before = (tmp_path / "hyperparams" / "best" / "S000.json").read_bytes()
    s2 = _tune(tmp_path, trials=1, min_improvement=1000.0)  # percent: nothing can pass
    assert not any(r.promoted for r in s2.results)
    assert all("not above" in r.reason and r.old_score is not None for r in s2.results)
    assert all(r.n_trials == 4 for r in s2.results)  # load_if_exists: 3 + 1 trials
    assert (tmp_path / "hyperparams" / "best" / "S000.json").read_bytes() == before
    s3 = _tune(tmp_path, trials=1, min_improvement=1000.0, force=True)
    assert all(r.promoted and r.reason == "forced" for r in s3.results)
    assert len(list((tmp_path / "results").glob("tune_*.json"))) == 3
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_unsafe_and_unknown_symbols_rejected(tmp_path):
    for bad in ("../etc", "a/b", "x\x00y", " S000"):
        with pytest.raises(DataError, match="unsafe symbol"):
            _tune(tmp_path, symbols=[bad])
    with pytest.raises(DataError, match="not in the data"):
        _tune(tmp_path, symbols=["NOPE"])
    assert not (tmp_path / "hyperparams").exists()


def test_nan_objective_fails_the_trial(tmp_path, monkeypatch):
    monkeypatch.setattr(tune_objective, "fit_score", lambda *a, **k: float("nan"))
    s = _tune(tmp_path, symbols=["S000"], trials=2)
    study = optuna.load_study(study_name="S000:lightgbm", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    r = s.results[0]
    assert (r.n_trials, r.n_failed, r.promoted, r.reason) == (0, 2, False, "no completed trials")
    assert not (tmp_path / "hyperparams" / "best" / "S000.json").exists()


def test_timeout_before_any_study(tmp_path):
    s = _tune(tmp_path, timeout=1e-9)
    assert [r.promoted for r in s.results] == [False, False]
    assert all(r.reason.startswith("no completed trials") for r in s.results)
    assert s.summary_path.exists() and not (tmp_path / "hyperparams" / "best").exists()


def test_cut_windows_purged_contiguous_and_test_last():
    folds, test = cut_windows(300, val=30, test=20, folds=3, stop=25, horizon=5)
    assert test.score_end == 300 and test.score_start == 280
    assert [f.score_end for f in folds[:-1]] == [f.score_start for f in folds[1:]]  # contiguous
    assert folds[-1].score_end + 5 == test.score_start
    for w in (*folds, test):
        assert w.fit_end + 5 == w.stop_start and w.stop_end - w.stop_start == 25
        assert w.stop_end + 5 == w.score_start  # labels (h=5) of one range never reach the next
    with pytest.raises(DataError, match="need at least"):
        cut_windows(199, val=30, test=20, folds=3, stop=25, horizon=5)
    with pytest.raises(ConfigError):
        cut_windows(300, val=30, test=20, folds=0, stop=25, horizon=5)


def test_scored_bars_never_pick_the_rounds(monkeypatch, tmp_path):
    """Early stopping sees only the stop window; the scored window is never passed to fit."""
    from alphaforge.models.trees import LightGBMForecaster

    seen = []
    real_fit = LightGBMForecaster.fit

    def spy(self, X, y, *, valid=None, label=None):
        seen.append(
            (
                X.index.get_level_values("timestamp").max(),
                valid[0].index.get_level_values("timestamp"),
            )
        )
        return real_fit(self, X, y, valid=valid, label=label)

    monkeypatch.setattr(LightGBMForecaster, "fit", spy)
    d = prepare(
        DATA,
        ["S000"],
        label="forward_return",
        horizon=1,
        features=None,
        val=30,
        test=20,
        folds=2,
        stop=15,
    )["S000"]
    est = get_model("lightgbm").from_params(FIXED["lightgbm"], random_state=0)
    score = fit_score(est, d, "pct_return_mae")
    assert math.isfinite(score) and len(seen) == 2
    ts = d.X.index.get_level_values("timestamp")
    for (fit_max, stop_ts), w in zip(seen, d.folds, strict=True):
        scored = ts[w.score_start : w.score_end]
        assert fit_max < stop_ts.min() and stop_ts.max() < scored.min()
        assert len(stop_ts) == 15


def test_pruner_stops_hopeless_lightgbm_trials(tmp_path):
    fixed = {
        "lightgbm": {
            "n_estimators": 300,
            "early_stopping_rounds": None,
            "n_jobs": 1,
            "min_child_samples": 10,
        }
    }
    s = _tune(tmp_path, symbols=["S000"], trials=14, fixed_params=fixed)
    study = optuna.load_study(study_name="S000:lightgbm", storage=f"sqlite:///{tmp_path}/optuna.db")
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "no trial was pruned"
    for t in pruned:  # pruned on the early-stopping loss after the warm-up, at a report step
        assert t.intermediate_values and max(t.intermediate_values) >= 5 * PRUNE_EVERY
        assert all(step % PRUNE_EVERY == 0 for step in t.intermediate_values)
    assert s.results[0].n_trials == 14 - len(pruned)
    s2 = _tune(tmp_path / "off", symbols=["S000"], trials=8, fixed_params=fixed, prune=False)
    off = optuna.load_study(
        study_name="S000:lightgbm", storage=f"sqlite:///{tmp_path}/off/optuna.db"
    )
    assert all(t.state == TrialState.COMPLETE and not t.intermediate_values for t in off.trials)
    assert s2.results[0].n_trials == 8


# ----------------------------------------------------------------------------- storage
def test_journal_two_workers_one_study(tmp_path):
    seen: list[list[StudyStatus]] = []
    s = _tune(tmp_path, workers=2, trials=4, monitor=seen.append)
    assert seen, "the live monitor was never called"
    final = {st.study: st for st in seen[-1]}  # the storage's state once the workers are done
    assert [final[f"{sym}:lightgbm"].complete for sym in SYMS] == [4, 4]
    assert all(st.running == 0 and st.best is not None for st in final.values())
    assert (tmp_path / "optuna.journal").exists() and not (tmp_path / "optuna.db").exists()
    for sym in SYMS:
        study = _journal_study(tmp_path, f"{sym}:lightgbm")
        assert len(study.trials) == 4
        assert all(t.state == TrialState.COMPLETE for t in study.trials)
        owners = {t.user_attrs[OWNER_ATTR] for t in study.trials}
        assert len(owners) == 2  # both worker processes ran trials of the same study
    assert all(r.n_trials == 4 and r.promoted for r in s.results)


def test_sweeper_fails_dead_workers_trials_and_repairs_torn_tail(tmp_path):
    spec = f"journal:{tmp_path}/optuna.journal"
    study = optuna.create_study(study_name="S000:lightgbm", storage=open_storage(spec))
    dead = study.ask()
    dead.set_user_attr(OWNER_ATTR, f"{socket.gethostname()}:{2**22 + 12345}")  # no such pid
    alive = study.ask()
    alive.set_user_attr(OWNER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
    with open(tmp_path / "optuna.journal", "ab") as fh:
        fh.write(b'{"op_code": 5, "worker_id": "x", "tri')  # writer killed mid-append
    assert sweep(spec, ["S000:lightgbm", "missing:lightgbm"]) == 1
    assert repair_journal(tmp_path / "optuna.journal") == 0  # already repaired
    states = [t.state for t in _journal_study(tmp_path, "S000:lightgbm").trials]
    assert states == [TrialState.FAIL, TrialState.RUNNING]


def _completed(root: Path) -> int:
    try:
        study = _journal_study(root, "S000:lightgbm")
    except (KeyError, FileNotFoundError, ValueError):
        return 0
    return sum(t.state == TrialState.COMPLETE for t in study.trials)


@pytest.mark.parametrize("kills", [2])
def test_kill_worker_mid_study_then_resume(tmp_path, kills, monkeypatch):
    """SIGKILL a worker at random moments ``kills`` times, then finish: nothing is left torn."""
    import random

    # a kill may land between a trial's creation and its owner record (the objective's first
    # statement): such an unowned trial is failed once older than STALE_UNOWNED_S, which
    # protects other live runs' brand-new trials; here no other run exists, so no wait
    monkeypatch.setattr(tune_storage, "STALE_UNOWNED_S", 0.0)
    spec = f"journal:{tmp_path}/optuna.journal"
    config = make_tune_config(data=DATA, model=["lightgbm"], symbols=["S000"], fixed_params=FIXED)
    job = TuneJob(config, StorageSpec.parse(spec), "minimize")
    rng = random.Random(0)
    for k in range(kills):
        proc = mp.get_context("spawn").Process(target=spawn_worker, args=(job, k, 10_000))
        proc.start()
        start, deadline = _completed(tmp_path), time.time() + 60
        while time.time() < deadline and _completed(tmp_path) < start + 2:
            time.sleep(0.1)
        time.sleep(rng.uniform(0.0, 0.3))  # somewhere inside a trial or a journal append
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        assert proc.exitcode == -signal.SIGKILL
    n_done = _completed(tmp_path)
    assert n_done >= 2 * kills
    s = _tune(tmp_path, symbols=["S000"], workers=2, trials=2)  # sweeps, resumes, gates
    study = _journal_study(tmp_path, "S000:lightgbm")
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert s.results[0].n_trials >= n_done + 2
    best = json.loads((tmp_path / "hyperparams" / "best" / "S000.json").read_text())
    assert math.isclose(best["val_score"], study.best_value)
    assert best["trial"] == study.best_trial.number
    assert not list(tmp_path.rglob("*.tmp"))
    assert not mp.active_children()  # no zombie workers


class _StallingOS:
    """``os`` for alphaforge.utils.io whose ``replace`` of a best config stalls (a slow disk)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def replace(self, src: str, dst: str) -> None:
        if "best" in Path(dst).parts:
            Path(self.marker).write_text(src)
            time.sleep(120)
        os.replace(src, dst)


def _tune_stalling_on_best_write(root: str, marker: str) -> None:
    from alphaforge.utils import io as io_mod

    io_mod.os = _StallingOS(marker)  # type: ignore[assignment]
    tune(
        data=DATA,
        model="lightgbm",
        symbols=["S000"],
        trials=2,
        root=root,
        fixed_params=FIXED,
        force=True,
    )


def test_kill_during_best_config_write(tmp_path):
    """SIGKILL while ``hyperparams/best`` is being written: the old file survives whole."""
    _tune(tmp_path, symbols=["S000"], trials=2)
    best_path = tmp_path / "hyperparams" / "best" / "S000.json"
    before = best_path.read_bytes()
    marker = tmp_path / "writing"
    proc = mp.get_context("spawn").Process(
        target=_tune_stalling_on_best_write, args=(str(tmp_path), str(marker))
    )
    proc.start()
    deadline = time.time() + 120
    while not marker.exists() and time.time() < deadline and proc.is_alive():
        time.sleep(0.05)
    assert marker.exists(), "the worker never reached the best-config write"
    tmp = Path(marker.read_text())
    assert tmp.exists() and json.loads(tmp.read_text())["symbol"] == "S000"  # written, not renamed
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    assert best_path.read_bytes() == before  # the killed write left the old config untouched
    s = _tune(tmp_path, symbols=["S000"], trials=1, force=True)  # next run cleans up
    assert not tmp.exists() and not list(tmp_path.rglob("*.tmp"))
    best = json.loads(best_path.read_text())
    study = optuna.load_study(study_name="S000:lightgbm", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert math.isclose(best["val_score"], study.best_value) and s.results[0].promoted
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


@pytest.mark.skipif(
    not os.environ.get("ALPHAFORGE_TEST_PG_URL"),
    reason="ALPHAFORGE_TEST_PG_URL not set (scripts/start_postgres.sh prints one)",
)
def test_postgres_two_workers(tmp_path):
    url = os.environ["ALPHAFORGE_TEST_PG_URL"]
    storage = open_storage(url)
    for name in ("S000:lightgbm", "S001:lightgbm"):  # a clean slate on a reused database
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except KeyError:
            pass
    s = _tune(tmp_path, workers=2, trials=4, storage=url)
    for sym in SYMS:
        study = optuna.load_study(study_name=f"{sym}:lightgbm", storage=storage)
        assert len(study.trials) == 4
        assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert all(r.promoted for r in s.results)


# ----------------------------------------------------------------------------- CLI
def test_cli_tune_and_report(tmp_path, monkeypatch):
    from alphaforge.cli import app

    # the CLI has no fixed params: keep its LightGBM tiny through the search space
    monkeypatch.setattr(tune_api, "_n_jobs_default", lambda m, w: dict(FIXED[m]))
    runner = CliRunner()
    args = ["tune", "--data", DATA, "--symbols", "S000", "S001", "--root", str(tmp_path)]
    res = runner.invoke(app, args, env={"TRIALS": "2"})
    assert res.exit_code == 0, res.output
    assert "2 of 2 promoted" in res.output
    res = runner.invoke(app, [*args, "--min-improvement", "1000"], env={"TRIALS": "1"})
    assert res.exit_code == 0, res.output
    assert "0 of 2 promoted" in res.output and "not above" in res.output
    res = runner.invoke(app, ["tune", "report", "--root", str(tmp_path)])
    assert res.exit_code == 0 and "tune history (2 runs)" in res.output
    res = runner.invoke(app, ["tune", "--data", DATA, "--symbols", "../x", "--root", str(tmp_path)])
    assert res.exit_code == 2 and "unsafe symbol" in res.output


def test_cli_config_file(tmp_path):
    from alphaforge.cli import app

    cfg = tmp_path / "tune.yaml"
    cfg.write_text(
        f"data: '{DATA}'\nsymbols: [S000]\ntrials: 5\nroot: /nonexistent\n"
        "fixed_params:\n  lightgbm: {n_estimators: 20, n_jobs: 1}\n"
    )
    runner = CliRunner()
    res = runner.invoke(
        app, ["tune", "--config", str(cfg), "--root", str(tmp_path)], env={"TRIALS": "1"}
    )  # env and flags override the file
    assert res.exit_code == 0, res.output
    assert "1 of 1 promoted" in res.output
    rec = json.loads((tmp_path / "hyperparams" / "best" / "S000.json").read_text())
    assert rec["n_trials"] == 1 and rec["params"]["n_estimators"] == 20
    cfg.write_text("trails: 3\n")
    res = runner.invoke(app, ["tune", "--config", str(cfg)])
    assert res.exit_code == 2 and "unknown tune option(s) trails" in res.output


def test_shipped_tune_yaml_loads():
    root = Path(__file__).resolve().parents[1]
    config = load_tune_config(root / "configs" / "tune.yaml")
    assert config.model == "lightgbm" and config.val == 30
    assert config.min_improvement == 1.0  # percent


def test_foundation_model_tunes_from_one_sample_bank(tmp_path, monkeypatch):
    """Trials that differ only in sample count / aggregation rescore one cached bank, and the
    bank's score equals a direct fit-and-predict of the same params."""
    cls = get_model("kronos")
    tiny = cls.test_params()
    calls = []
    real = fit_score_bank

    def spy(*a, **k):
        before = len(k["cache"])
        out = real(*a, **k)
        calls.append(len(k["cache"]) - before)  # 1: a new bank was drawn, 0: reused
        return out

    monkeypatch.setattr(tune_objective, "fit_score_bank", spy)
    fixed = {k: v for k, v in tiny.items() if k not in ("num_samples", "aggregation")}
    # fix everything the bank depends on, so every trial shares one bank
    monkeypatch.setattr(
        cls,
        "search_space",
        classmethod(
            lambda c, trial: {
                "num_samples": trial.suggest_int("num_samples", 2, 8),
                "aggregation": trial.suggest_categorical("aggregation", ["mean", "median"]),
            }
        ),
    )
    monkeypatch.setattr(cls, "bank_size", 8)
    s = tune(
        data=DATA,
        model="kronos",
        symbols=["S000"],
        trials=4,
        root=tmp_path,
        fixed_params={"kronos": fixed},
        val=10,
        test=10,
    )
    assert calls == [1, 0, 0, 0]
    r = s.results[0]
    assert r.n_trials == 4 and math.isfinite(r.new_score)
    d = prepare(DATA, ["S000"], label="forward_return", horizon=1, features=None, val=10, test=10)[
        "S000"
    ]
    direct = fit_score(cls.from_params(r.params, random_state=0), d, "pct_return_mae")
    assert math.isclose(direct, r.new_score, rel_tol=1e-9)
