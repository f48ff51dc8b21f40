"""First-hour warts: flag names, the ``tune`` group, one-line errors that name the fix."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from alphaforge.cli import app
from alphaforge.cli.gpt import _check_sampling
from alphaforge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DATA = "synthetic:n_symbols=3,n_bars=300,seed=0"
runner = CliRunner()


def _invoke(*args: object, **kw: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kw)


def _one_error(res, start: str) -> str:
    """The only stderr line of a failed command, which starts with ``start``."""
    assert res.exit_code == 2, res.output
    lines = res.stderr.splitlines()
    assert lines[-1].startswith(start) and not res.stderr.startswith("\n"), res.stderr
    assert all(line.strip() for line in lines)  # no blank line before the error
    return lines[-1]


def test_features_cross_section_flag_reads_cleanly(tmp_path):
    text = _invoke("features", "--help").output
    assert "--cross-section" in text and "--no-cross-section" in text and "no-no" not in text
    res = _invoke("features", DATA, "--out", tmp_path / "f.parquet", "--no-cross-section")
    assert res.exit_code == 0, res.output
    assert not any(c.startswith("cs_") for c in pd.read_parquet(tmp_path / "f.parquet").columns)


def test_tune_report_is_a_listed_subcommand(tmp_path):
    assert "report" in _invoke("tune", "--help").output.split("Commands")[-1]
    for args in (["tune", "report", "--root", tmp_path], ["tune", "--root", tmp_path, "report"]):
        res = _invoke(*args)
        assert res.exit_code == 0 and f"no tune runs under {tmp_path}/results" in res.output


def test_tune_typo_of_a_command_is_not_taken_for_a_symbol(tmp_path):
    res = _invoke("tune", "reprot", "--root", tmp_path)
    line = _one_error(res, "ConfigError: unknown command 'reprot'; did you mean 'report'?")
    assert "--symbols" in line
    assert not (tmp_path / "results").exists()


def test_model_typos_name_the_closest_model(tmp_path):
    cfg = tmp_path / "typo.yaml"
    cfg.write_text((ROOT / "configs" / "tiny.yaml").read_text().replace("lightgbm", "lightgbn"))
    res = _invoke("run", cfg, "--out", tmp_path / "r")
    assert "did you mean 'lightgbm'?" in _one_error(res, "ConfigError: ")
    res = _invoke("tune", "--data", DATA, "--model", "lightgbn", "--root", tmp_path / "t")
    line = _one_error(res, "ConfigError: --model: unknown model 'lightgbn'; did you mean")
    assert "'lightgbm'?" in line and "valid: 'both', 'all'" in line
    assert not (tmp_path / "r").exists() and not (tmp_path / "t").exists()


@pytest.mark.parametrize(
    ("prompt", "options", "message"),
    [
        ([1, 99, 3], {}, "need tokens in [0, 16) in --seed-tokens, got [99]"),
        ([1], {"num": 0}, "--num: need >= 1, got 0"),
        ([1], {"temperature": -0.5}, "--temperature: need >= 0, got -0.5"),
        ([1], {"top_k": -1}, "--top-k: need >= 0, got -1"),
    ],
)
def test_gpt_generate_names_only_the_broken_input(prompt, options, message):
    given = {"num": 5, "samples": 1, "temperature": 1.0, "top_k": 0, **options}
    with pytest.raises(ConfigError) as err:
        _check_sampling(prompt, 16, **given)
    assert str(err.value) == message
