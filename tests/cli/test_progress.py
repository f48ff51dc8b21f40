"""Progress of long commands: records on stderr when it is not a terminal, live bars on one."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner

from alphaforge.cli import app, ui
from alphaforge.cli.tune import _TuneView
from alphaforge.tuning import StudyStatus, TuneConfig
from alphaforge.tuning import api as tune_api

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.yaml"
runner = CliRunner()
RECORD = re.compile(r"^fold (\d)/2 model (\d)/5 (\w+): done in [\d.]+s \(elapsed \d:\d\d:\d\d")


def _invoke(*args: object, **kw: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kw)


def test_run_prints_a_record_per_fold_and_model_before_the_table(tmp_path):
    res = _invoke("run", TINY, "--out", tmp_path / "run")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    records = [(i, RECORD.match(line)) for i, line in enumerate(lines) if RECORD.match(line)]
    got = [(int(m[1]), int(m[2]), m[3]) for _, m in records]
    members = ["lightgbm", "xgboost", "zero", "trailing_mean", "last_value"]
    assert got == [(f, j + 1, name) for f in (1, 2) for j, name in enumerate(members)]
    table = next(i for i, line in enumerate(lines) if "out-of-sample (test) metrics" in line)
    assert max(i for i, _ in records) < table
    assert "ETA ~" in lines[records[0][0]]  # an estimate while work is left
    assert all(line.strip() for line in res.stderr.splitlines())  # no blank line, no debris
    assert re.fullmatch(rf"run {TINY}: done in [\d.]+s", res.stderr.splitlines()[-1])


def test_networks_report_each_epoch(tmp_path):
    cfg = yaml.safe_load(TINY.read_text())
    lstm = {"lookback": 8, "hidden": 8, "max_epochs": 2, "batch_size": 64, "device": "cpu"}
    cfg["models"] = [{"name": "lstm", "params": lstm}, {"name": "lightgbm"}]
    cfg["baselines"] = False
    path = tmp_path / "lstm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = _invoke("run", path, "--out", tmp_path / "run")
    assert res.exit_code == 0, res.output
    epoch = re.compile(r"fold (\d)/2 model 1/2 lstm epoch (\d)/2 valid loss [\d.e-]+: done in ")
    found = [epoch.match(line) for line in res.stderr.splitlines() if " epoch " in line]
    assert [(m[1], m[2]) for m in found if m] == [("1", "1"), ("1", "2"), ("2", "1"), ("2", "2")]
    assert len(found) == 4  # every epoch line has that form; trees report no epochs
    assert re.search(r"fold 2/2 model 2/2 lightgbm: done in", res.stderr)


def test_records_name_the_item_its_time_and_an_estimate():
    now = [0.0]
    report = ui.StageProgress(clock=lambda: now[0])
    calls = [
        (10, "fold", 0, 2, ""),
        (10, "model", 0, 2, "lstm"),
        (12, "epoch", 1, 3, "valid loss 1.5"),
        (20, "model", 1, 2, "lstm"),
        (20, "model", 1, 2, "lightgbm"),
        (25, "model", 2, 2, "lightgbm"),
        (25, "fold", 1, 2, ""),
        (26, "model", 0, 2, "lstm"),
        (30, "model", 1, 2, "lstm"),
    ]
    with ui.err.capture() as captured:
        for t, *call in calls:
            now[0] = t
            report(*call)
    assert captured.get().splitlines() == [
        "fold 1/2 model 1/2 lstm epoch 1/3 valid loss 1.5: done in 2.0s "
        "(elapsed 0:00:12, ETA ~0:00:22)",
        "fold 1/2 model 1/2 lstm: done in 10.0s (elapsed 0:00:20, ETA ~0:00:30)",
        "fold 1/2 model 2/2 lightgbm: done in 5.0s (elapsed 0:00:25, ETA ~0:00:15)",
        "fold 1/2: done in 15.0s (elapsed 0:00:25, ETA ~0:00:15)",
        "fold 2/2 model 1/2 lstm: done in 5.0s (elapsed 0:00:30, ETA ~0:00:07)",
    ]


def test_bars_restart_each_fold_and_hide_the_finished_epoch_bar():
    now = [0.0]
    bars = Progress(console=Console(file=io.StringIO()), get_time=lambda: now[0])
    report = ui.StageProgress(bars, clock=lambda: now[0])
    for t, *call in [
        (0, "fold", 0, 2, ""),
        (0, "model", 0, 1, "lstm"),
        (1, "epoch", 1, 2, "valid loss 1.0"),
        (5, "model", 1, 1, "lstm"),  # the model bar finishes: its clock stops
        (5, "fold", 1, 2, ""),
        (6, "model", 0, 1, "lstm"),
    ]:
        now[0] = t
        report(*call)
    tasks = {t.description.split(":")[0]: t for t in bars.tasks}
    now[0] = 9
    assert tasks["model"].elapsed == 3 and not tasks["model"].finished  # was frozen at 5
    assert tasks["model"].completed == 0 and tasks["fold"].completed == 1
    assert not tasks["epoch"].visible  # back when the next network reports an epoch


def test_tune_prints_a_record_per_trial(tmp_path, monkeypatch):
    fixed = {"n_estimators": 20, "n_jobs": 1}
    monkeypatch.setattr(tune_api, "_n_jobs_default", lambda m, w: dict(fixed))
    data = "synthetic:n_symbols=3,n_bars=400,seed=1"
    res = _invoke(
        "tune", "--data", data, "--symbols", "S000", "--root", tmp_path, env={"TRIALS": "2"}
    )
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    trials = [i for i, line in enumerate(lines) if re.match(r"trials \d/2 S000:lightgbm: ", line)]
    summary = next(i for i, line in enumerate(lines) if line.startswith("tune: "))
    assert len(trials) == 2 and trials[-1] < summary


def test_tune_counts_trials_of_other_workers_from_the_storage():
    view = _TuneView(TuneConfig(trials=3, workers=2), None)
    with ui.err.capture() as captured:
        view.monitor([StudyStatus("A:lightgbm", complete=5), StudyStatus("B:lightgbm")])
        view.monitor([StudyStatus("A:lightgbm", complete=6), StudyStatus("B:lightgbm", pruned=1)])
        view.monitor([StudyStatus("A:lightgbm", complete=6), StudyStatus("B:lightgbm", pruned=1)])
        view.monitor([StudyStatus("A:lightgbm", complete=7), StudyStatus("B:lightgbm", pruned=1)])
    lines = [line.split(": done in")[0] for line in captured.get().splitlines()]
    assert lines == ["trials 2/6 A:lightgbm, B:lightgbm", "trials 3/6 A:lightgbm"]


def test_commands_without_stages_print_a_done_line_and_one_line_errors(tmp_path):
    res = _invoke("features", "synthetic:n_symbols=3,n_bars=300,seed=0", "--out", tmp_path / "f")
    assert res.exit_code == 0, res.output
    assert re.fullmatch(r"building features: done in [\d.]+s", res.stderr.splitlines()[-1])
    res = _invoke("features", tmp_path / "nope.csv", "--out", tmp_path / "g")
    assert res.exit_code == 2 and res.stderr.splitlines() == [
        f"DataError: {tmp_path / 'nope.csv'}: file not found"
    ]


def test_a_slow_step_says_when_it_started(monkeypatch, capsys):
    monkeypatch.setattr(ui, "START_AFTER_S", 0.05)
    with ui.spinner("rendering report"):
        time.sleep(0.5)
    with ui.progress("run x.yaml") as report:
        report("model", 1, 1, "lightgbm")  # a record first: no start line needed
        time.sleep(0.5)
    lines = capsys.readouterr().err.splitlines()  # the start line comes from a timer thread
    assert lines[0] == "rendering report ..." and lines[1].startswith("rendering report: done in")
    assert lines[2].startswith("model 1/1 lightgbm: done in") and len(lines) == 4
