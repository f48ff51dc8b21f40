"""What users of ``alphaforge.tuning`` rely on: one TuneConfig, one unit, one storage parser.

- unknown options are ConfigErrors naming the valid ones, from Python and from YAML;
- ``min_improvement`` is a percent from Python, YAML and the command line alike;
- storages are parsed once into a :class:`StorageSpec`;
- the sweeper fails a dead worker's RUNNING trial through Optuna's public ``Study.tell``.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from alphaforge.cli import app
from alphaforge.errors import ConfigError
from alphaforge.tuning import (
    OWNER_ATTR,
    StorageSpec,
    TuneConfig,
    load_tune_config,
    make_tune_config,
    open_storage,
    resolve_storage,
    sweep,
    sweep_stale,
    tune,
)
from alphaforge.tuning import api as tune_api
from alphaforge.tuning import objective as tune_objective
from alphaforge.tuning import storage as tune_storage

DATA = "synthetic:n_symbols=3,n_bars=400,seed=1"
FIXED = {"lightgbm": {"n_estimators": 20, "n_jobs": 1}}
DEAD_PID = 2**22 + 12345  # above Linux's pid_max: no such process


# ----------------------------------------------------------------------------- unknown options
def test_unknown_option_from_python_names_the_valid_ones(tmp_path):
    for call in (
        lambda: TuneConfig(trails=3),
        lambda: make_tune_config({"data": DATA, "trails": 3}),
        lambda: tune(data=DATA, trails=3, root=tmp_path),
    ):
        with pytest.raises(ConfigError, match="unknown tune option") as info:
            call()
        msg = str(info.value)
        assert "trails" in msg
        assert all(name in msg for name in ("trials", "workers", "min_improvement", "root"))
    assert not (tmp_path / "logs").exists()  # rejected before anything is written


def test_unknown_option_from_yaml_names_the_file_and_valid_ones(tmp_path):
    path = tmp_path / "tune.yaml"
    path.write_text(f"data: '{DATA}'\ntrails: 3\n")
    with pytest.raises(ConfigError) as info:
        load_tune_config(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: unknown tune option(s) trails; valid: data, model")


def test_bad_values_name_the_option(tmp_path):
    with pytest.raises(ConfigError, match="'trials'"):
        TuneConfig(trials=0)
    with pytest.raises(ConfigError, match="'min_improvement'"):
        make_tune_config(min_improvement=-1.0)
    path = tmp_path / "tune.yaml"
    path.write_text("workers: two\n")
    with pytest.raises(ConfigError, match=r"tune\.yaml: tune option 'workers'"):
        load_tune_config(path)
    with pytest.raises(ConfigError, match="'data' is required"):
        tune(root=tmp_path)


def test_config_mapping_and_options_compose():
    base = TuneConfig(data=DATA, trials=7, min_improvement=2.5)
    cfg = make_tune_config(base, trials=3)
    assert (cfg.trials, cfg.min_improvement, base.trials) == (3, 2.5, 7)  # base unchanged
    assert make_tune_config({"data": DATA, "trials": 7}, trials=3) == cfg.model_copy(
        update={"min_improvement": 1.0}
    )
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # travels to spawn workers
    assert TuneConfig().min_improvement == 1.0  # percent: 1%


# ----------------------------------------------------------------------------- min_improvement
def _old_best(root: Path, symbol: str, score: float) -> None:
    path = root / "hyperparams" / "best" / f"{symbol}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"metric": "pct_return_mae", "val_score": score}))


def _run(source: str, root: Path) -> dict[str, tuple[bool, str]]:
    opts = {
        "data": DATA,
        "symbols": ["S000", "S001"],
        "trials": 1,
        "root": str(root),
        "min_improvement": 1.0,
        "fixed_params": FIXED,
    }
    yaml_path = root / "tune.yaml"
    yaml_path.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in opts.items()) + "\n")
    if source == "python":
        summary = tune(**opts)
    elif source == "yaml":
        summary = tune(load_tune_config(yaml_path))
    else:
        args = (
            ["--config", str(yaml_path)]
            if source == "cli-config"
            else [
                "--data",
                DATA,
                "--symbols",
                "S000",
                "S001",
                "--trials",
                "1",
                "--root",
                str(root),
                "--min-improvement",
                "1.0",
            ]
        )
        res = CliRunner().invoke(app, ["tune", *args])
        assert res.exit_code == 0, res.output
        rec = json.loads(sorted((root / "results").glob("tune_*.json"))[-1].read_text())
        return {r["symbol"]: (r["promoted"], r["reason"]) for r in rec["results"]}
    return {r.symbol: (r.promoted, r.reason) for r in summary.results}


@pytest.mark.parametrize("source", ["python", "yaml", "cli", "cli-config"])
def test_min_improvement_is_percent_everywhere(source, tmp_path, monkeypatch):
    """1.0 means 1% from every source: a 2% gain is promoted, a 0.5% gain is not."""
    monkeypatch.setattr(tune_objective, "fit_score", lambda *a, **k: 1.0)  # every trial: 1.0
    monkeypatch.setattr(tune_api, "_n_jobs_default", lambda m, w: {})
    _old_best(tmp_path, "S000", 1.0 / 0.98)  # new 1.0 is 2% better (lower is better)
    _old_best(tmp_path, "S001", 1.0 / 0.995)  # new 1.0 is 0.5% better
    got = _run(source, tmp_path)
    assert got["S000"] == (True, "improved +2.00% > 1.00%")
    assert got["S001"] == (False, "improvement +0.50% not above 1.00%")


# ----------------------------------------------------------------------------- storage
def test_resolve_storage_kinds(tmp_path):
    assert resolve_storage(None, tmp_path, 1) == StorageSpec(
        "sqlite", f"sqlite:///{tmp_path}/optuna.db"
    )
    journal = resolve_storage(None, tmp_path, 2)
    assert journal == StorageSpec("journal", f"{tmp_path}/optuna.journal")
    assert journal.url == str(journal) == f"journal:{tmp_path}/optuna.journal"
    assert resolve_storage("sqlite:///x.db", tmp_path, 1).kind == "sqlite"
    assert resolve_storage("runs/x.journal", tmp_path, 4) == StorageSpec(
        "journal", "runs/x.journal"
    )
    assert resolve_storage("journal:runs/x", tmp_path, 4) == StorageSpec("journal", "runs/x")
    pg = resolve_storage("postgresql://u@h:5432/db", tmp_path, 8)
    assert pg == StorageSpec("postgresql", "postgresql://u@h:5432/db") and pg.url == pg.location
    assert resolve_storage("mysql://u@h/db", tmp_path, 2).kind == "rdb"
    assert resolve_storage(journal, tmp_path, 2) is journal
    assert pickle.loads(pickle.dumps(pg)) == pg
    with pytest.raises(ConfigError, match="SQLite is not safe with 2 workers"):
        resolve_storage("sqlite:///x.db", tmp_path, 2)
    with pytest.raises(ConfigError, match="SQLite is not safe"):
        tune(data=DATA, storage=f"sqlite:///{tmp_path}/o.db", workers=2, root=tmp_path)
    with pytest.raises(ConfigError, match="expected sqlite"):
        resolve_storage("optuna.db", tmp_path, 1)


def test_summary_storage_is_readable_and_reopens(tmp_path):
    spec = resolve_storage(None, tmp_path, 2)
    optuna.create_study(study_name="S000:lightgbm", storage=open_storage(spec))
    assert [s.study_name for s in open_storage(spec.url).get_all_studies()] == ["S000:lightgbm"]


@pytest.mark.parametrize("workers", [1, 2])  # SQLite and journal storages
def test_sweep_fails_dead_workers_trial_through_study_tell(workers, tmp_path, monkeypatch):
    spec = resolve_storage(None, tmp_path, workers)
    study = optuna.create_study(study_name="S000:lightgbm", storage=open_storage(spec))
    dead = study.ask()
    dead.set_user_attr(OWNER_ATTR, f"{socket.gethostname()}:{DEAD_PID}")
    alive = study.ask()
    alive.set_user_attr(OWNER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
    done = study.ask()
    done.set_user_attr(OWNER_ATTR, f"{socket.gethostname()}:{DEAD_PID}")
    study.tell(done, 0.5)  # finished: the sweep leaves it alone
    told = []
    real_tell = optuna.Study.tell

    def spy(self, trial, values=None, state=None, skip_if_finished=False):
        told.append((trial, state, skip_if_finished))
        return real_tell(self, trial, values, state=state, skip_if_finished=skip_if_finished)

    monkeypatch.setattr(optuna.Study, "tell", spy)
    assert sweep(spec, ["S000:lightgbm"]) == 1
    assert told == [(dead.number, TrialState.FAIL, True)]
    states = {
        t.number: t.state
        for t in optuna.load_study(study_name="S000:lightgbm", storage=open_storage(spec)).trials
    }
    assert states == {
        dead.number: TrialState.FAIL,
        alive.number: TrialState.RUNNING,
        done.number: TrialState.COMPLETE,
    }
    assert sweep_stale(study) == 0  # nothing left to fail


def test_unowned_trial_is_failed_only_once_it_is_stale(tmp_path, monkeypatch):
    """A worker killed between creating a trial and recording its owner leaves an unowned
    RUNNING trial: another run's brand-new trial looks the same, so it is failed only once
    older than STALE_UNOWNED_S."""
    spec = resolve_storage(None, tmp_path, 1)
    study = optuna.create_study(study_name="S000:lightgbm", storage=open_storage(spec))
    orphan = study.ask()  # no owner recorded
    assert sweep(spec, ["S000:lightgbm"]) == 0  # young: could belong to a live run
    monkeypatch.setattr(tune_storage, "STALE_UNOWNED_S", 0.0)
    assert sweep(spec, ["S000:lightgbm"]) == 1
    (trial,) = optuna.load_study(study_name="S000:lightgbm", storage=open_storage(spec)).trials
    assert trial.number == orphan.number and trial.state == TrialState.FAIL
