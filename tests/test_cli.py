"""The CLI: one red line and exit 2 for bad input, nothing written; the commands work end to end."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from alphaforge.cli import app

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "fixtures" / "bad"
EXPECTED = json.loads((BAD / "EXPECTED.json").read_text())
runner = CliRunner()


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


MALFORMED = sorted(n for n in EXPECTED if not n.startswith("control_"))


def test_fixture_set_covers_every_defect_class():
    assert len(MALFORMED) >= 40


@pytest.mark.parametrize("name", ["control_valid.csv.gz", "control_valid.parquet"])
def test_validate_valid_file_prints_summary(name):
    res = _invoke("data", "validate", BAD / name, "--min-bars", 100)
    assert res.exit_code == 0 and res.output.startswith("OK") and "n_symbols=2" in res.output


@pytest.mark.parametrize("name", MALFORMED)
def test_validate_each_malformed_file_gives_one_specific_error(name, tmp_path):
    spec = EXPECTED[name]
    src = BAD / name
    path = tmp_path / name
    if src.exists():
        shutil.copy(src, path)
    min_bars = spec.get("kwargs", {}).get("min_bars")
    args = ["data", "validate", path] + (["--min-bars", min_bars] if min_bars is not None else [])
    res = _invoke(*args)
    text = res.output
    assert res.exit_code == 2, text
    assert "Traceback" not in text
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("DataError: "), text
    for part in spec["contains"]:
        assert part in " ".join(lines), (part, text)
    assert name.split(".")[0] in text or "does_not_exist" in text  # names the file
    assert sorted(p.name for p in tmp_path.iterdir()) == ([name] if src.exists() else [])


def test_validate_repair_writes_report(tmp_path):
    name = next(n for n, s in EXPECTED.items() if s.get("repair"))
    report = tmp_path / "repairs.csv"
    res = _invoke(
        "data",
        "validate",
        BAD / name,
        "--repair",
        "--report",
        report,
        "--min-bars",
        EXPECTED[name]["kwargs"].get("min_bars", 100),
    )
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(report)
    assert list(rows["row"]) == EXPECTED[name]["repair"]


def test_data_list_and_models():
    res = _invoke("data", "list")
    assert res.exit_code == 0 and "builtin:us-stocks-5" in res.output
    res = _invoke("models")
    assert res.exit_code == 0 and "lightgbm" in res.output and "garch" in res.output


def test_features_command_writes_parquet(tmp_path):
    out = tmp_path / "f.parquet"
    res = _invoke("features", "synthetic:n_symbols=4,n_bars=300,seed=0", "--out", out)
    assert res.exit_code == 0, res.output
    frame = pd.read_parquet(out)
    assert {"timestamp", "symbol", "ret_1", "cs_rank_ret_1"} <= set(frame.columns)
    assert len(frame) == 1200


def test_run_report_and_backtest_commands(tmp_path):
    run_dir = tmp_path / "run"
    res = _invoke("run", ROOT / "configs" / "tiny.yaml", "--out", run_dir)
    assert res.exit_code == 0, res.output
    assert "lightgbm" in res.output and "trailing_mean*" in res.output
    assert (run_dir / "report.html").is_file()
    (run_dir / "report.html").unlink()
    assert _invoke("report", run_dir).exit_code == 0 and (run_dir / "report.html").is_file()
    res = _invoke(
        "backtest", run_dir, "--strategy", "top_k", "--k", "3", "--costs-bps", "10", "--save"
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["backtest_spec"]["strategy"] == "top_k" and metrics["backtest_spec"]["k"] == 3
    # a bad setting is one line and exit 2
    res = _invoke("backtest", run_dir, "--k", "3")
    assert res.exit_code == 2 and "do not apply" in res.output


def test_run_with_bad_config_is_one_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text((ROOT / "configs" / "tiny.yaml").read_text().replace("models:", "modles:"))
    res = _invoke("run", cfg, "--out", tmp_path / "r")
    assert res.exit_code == 2 and "ConfigError" in res.output and "modles" in res.output
    assert not (tmp_path / "r").exists()
