"""Tables fit 80 columns without cutting a value; piped lines are never cut or wrapped."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from rich.console import Console
from typer.testing import CliRunner

from alphaforge.cli import app, ui
from alphaforge.cli import run as cli_run
from alphaforge.run import RunResult

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

# the metrics of a return label, with values of the widths real runs give (qlike: volatility)
OVERALL = {
    "rank_ic": -0.01234,
    "rank_icir": 0.2049,
    "ic": 0.0613,
    "icir": 0.1606,
    "direction_accuracy": 0.5079,
    "mae": 0.01149,
    "rmse": 0.01463,
}
NET = {"base": {"net": {"sharpe": -12.3456}}, "lagged": {"net": {"sharpe": 0.7838}}}


def _result(**extra: float) -> RunResult:
    """A run of models with long names, significance and backtests (no fitting)."""
    names = ["multitask_transformer", "attention_lstm", "lightgbm", "trailing_mean"]
    models = {
        name: {
            "baseline": name == "trailing_mean",
            "test": {"overall": {**OVERALL, **extra}},
            "significance": {"rank_ic_t": -13.456, "significant": True},
            "backtest": NET,
        }
        for name in names
    }
    return RunResult(None, Path("."), pd.DataFrame(), {"models": models})  # type: ignore[arg-type]


def _render(table: object, width: int) -> list[str]:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text().splitlines()


def test_metrics_table_fits_80_columns_without_cutting_a_value():
    lines = _render(cli_run.metrics_table(_result()), 80)
    assert max(len(line) for line in lines) <= 80
    assert not any("…" in line for line in lines)
    head = next(line for line in lines if line.lstrip().startswith("model"))
    assert head.split() == ["model", "rank_ic", "t", "sig", "rank_icir", "ic", "sharpe", "lag1"]
    row = next(line for line in lines if line.lstrip().startswith("multitask_transformer"))
    assert row.split() == [
        "multitask_transformer",
        "-0.0123",
        "-13.46",
        "*",
        "0.205",
        "0.0613",
        "-12.3",
        "0.784",
    ]


def test_wide_table_has_every_column_uncut():
    lines = _render(cli_run.metrics_table(_result(qlike=1.2345), wide=True), ui.PIPED_WIDTH)
    head = next(line for line in lines if line.lstrip().startswith("model")).split()
    assert head[1:] == [
        "rank_ic",
        "t",
        "sig",
        "rank_icir",
        "ic",
        "icir",
        "dir_acc",
        "mae",
        "rmse",
        "qlike",
        "sharpe",
        "sharpe_lag1",
    ]
    assert not any("…" in line for line in lines)


def test_number_cells_share_decimals_per_column():
    assert ui.number_cells([0.0746, 0.1218, -0.0036]) == ["0.075", "0.122", "-0.004"]
    assert ui.number_cells([4.9636, -0.78]) == ["4.96", "-0.78"]
    assert ui.number_cells([None, float("nan"), "x", 0.0]) == ["-", "-", "-", "0.00"]
    assert ui.number_cells([1234.5, 3.0]) == ["1234", "3"]


def test_run_and_backtest_tables_fit_80_columns(tmp_path):
    run_dir = tmp_path / "run"
    res = runner.invoke(app, ["run", str(ROOT / "configs" / "tiny.yaml"), "--out", str(run_dir)])
    assert res.exit_code == 0, res.output
    assert max(len(line.rstrip()) for line in res.stdout.splitlines()[:-1]) <= 80
    res = runner.invoke(app, ["backtest", str(run_dir), "--strategy", "top_k", "--k", "3"])
    assert res.exit_code == 0, res.output
    assert max(len(line.rstrip()) for line in res.stdout.splitlines()) <= 80
    assert "…" not in res.stdout


def test_piped_plain_lines_are_not_cut(tmp_path):
    src = ROOT / "tests" / "fixtures" / "bad" / "control_valid.parquet"
    path = tmp_path / ("a_rather_long_folder_name_" * 6) / "control_valid.parquet"
    path.parent.mkdir()
    shutil.copy(src, path)
    res = runner.invoke(app, ["data", "validate", str(path), "--min-bars", "100"])
    assert res.exit_code == 0, res.output
    line = res.stdout.splitlines()[0]
    assert len(line) > 200 and line.startswith(f"OK {path}: ") and "n_symbols=2" in line
